# kvshard in a container: a memcached-compatible server, one process per CPU.
#
#   docker build -t kvshard .
#   docker run --rm -p 11211:11211 -p 9150:9150 kvshard              # memcached on 11211, /metrics on 9150
#   docker run --rm -p 11211:11211 kvshard -m 1024 -t 4 -c 4096      # memcached's flags pass through
#
# It listens on 0.0.0.0 (inside a container loopback is useless; an -l given replaces it), runs as an unprivileged user,
# and is healthy while it answers memcached's "version" (KVSHARD_PORT: the port it checks, if
# you give -p; KVSHARD_HEALTH_ARGS: how to reach a server started with -Z, -Y or -S, e.g.
#   docker run -e KVSHARD_HEALTH_ARGS="-Z --ca-cert /certs/ca.pem -S --sasl-pwdb /etc/kvshard/users" ...
# see python -m kvshard.health --help). /metrics is on 9150 unless that port is taken.
# The build stage installs the package exactly as the README's set-up does (a venv, then pip
# install of the source tree, which compiles the core with gcc); tests/test_deploy.py runs those
# same commands.

FROM python:3.11-slim-bookworm AS build
ENV VENV=/opt/kvshard SRC=/src PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# a C compiler for the compiled core (the image has Python's headers); the final stage needs none
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY framework ./framework
COPY kvshard ./kvshard
COPY net_backends ./net_backends
COPY loadtest ./loadtest
# install: begin
RUN python -m venv "$VENV" \
 && "$VENV/bin/pip" install --no-cache-dir "$SRC"
# install: end

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 kvshard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kvshard
COPY --from=build /opt/kvshard /opt/kvshard
ENV PATH=/opt/kvshard/bin:$PATH KVSHARD_PORT=11211 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 11211 9150
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-m", "kvshard.health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["kvshard", "--listen-default", "0.0.0.0"]
CMD []
