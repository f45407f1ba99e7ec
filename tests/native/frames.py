"""Golden traffic: frames the Linux kernel (Debian 12) sent to a tap whose far side was our stack
at 10.77.0.2 (MAC 02:00:0a:4d:00:02), the kernel at 10.77.0.1 (MAC be:d0:2f:b2:04:be), recorded
during ``ping -c 3 10.77.0.2`` from the kernel side."""

KERNEL_MAC = bytes.fromhex("bed02fb204be")
KERNEL_IP = bytes([10, 77, 0, 1])
STACK_MAC = bytes.fromhex("02000a4d0002")
STACK_IP = bytes([10, 77, 0, 2])

# who-has 10.77.0.2 tell 10.77.0.1 (broadcast, 42 bytes: no padding on a tap)
ARP_REQUEST = bytes.fromhex(
    "ffffffffffffbed02fb204be08060001080006040001bed02fb204be0a4d00010000000000000a4d0002"
)
# echo request id 0x0683 seq 1, 56 bytes of data
ECHO_REQUEST = bytes.fromhex(
    "02000a4d0002bed02fb204be080045000054c5ff40004001600d0a4d00010a4d00020800d02906830001eeba026b"
    "000000007059010000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031"
    "323334353637"
)
# an IPv6 multicast listener report: not for us
MLD_REPORT = bytes.fromhex(
    "333300000016bed02fb204be86dd600000000024000100000000000000000000000000000000ff0200000000000000"
    "000000000000163a000502000001008f006a1a0000000104000000ff0200000000000000000001ffb204be"
)

# a SYN from the kernel (10.77.0.1:51066 -> 10.77.0.2:11211): MSS 1460, SACK permitted,
# timestamps, NOP, window scale 10 (another kernel MAC: a new tap)
KERNEL_SYN = bytes.fromhex(
    "02000a4d0002f66569c39a4008004500003c03624000400622be0a4d00010a4d0002c77a2bcb972737a100000000"
    "a002faf0ed5d0000020405b40402080ad0deb824000000000103030a"
)
