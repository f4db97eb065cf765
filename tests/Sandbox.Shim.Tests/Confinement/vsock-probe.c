/* vsock-probe CID PORT: what a process in the guest gets when it dials the agent's vsock port. Prints one line:
 * "cid C: connect: ERROR", or "cid C: connected, read N" (N bytes answered to an HTTP/2 preface: 0 = closed at once).
 * Built static by the escape drill (EscapeDrillTests) and run inside a privileged container. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: vsock-probe CID PORT\n");
        return 2;
    }
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0) {
        printf("cid %s: socket: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct timeval timeout = { 5, 0 };
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_vm address;
    memset(&address, 0, sizeof address);
    address.svm_family = AF_VSOCK;
    address.svm_cid = (unsigned)strtoul(argv[1], NULL, 10);
    address.svm_port = (unsigned)strtoul(argv[2], NULL, 10);
    if (connect(s, (struct sockaddr *)&address, sizeof address) < 0) {
        printf("cid %s: connect: %s\n", argv[1], strerror(errno));
        return 1;
    }
    const char *preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    ssize_t written = write(s, preface, strlen(preface));
    char buffer[64];
    ssize_t n = written < 0 ? -1 : read(s, buffer, sizeof buffer);
    printf("cid %s: connected, read %zd\n", argv[1], n < 0 ? 0 : n);
    return 0;
}
