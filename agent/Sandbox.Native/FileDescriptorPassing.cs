using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Native;

/// <summary>Receives a file descriptor sent with SCM_RIGHTS: how crun and runc hand over a pty master on --console-socket.</summary>
public static unsafe class FileDescriptorPassing
{
    /// <summary>
    /// Reads one message from the blocking, connected Unix socket <paramref name="socketFd"/> and returns the fd it
    /// carries (close-on-exec). The message's data (the pty's name) is dropped. <paramref name="peer"/> names the
    /// sender in errors.
    /// </summary>
    public static int Receive(int socketFd, string peer)
    {
        byte* data = stackalloc byte[4096];
        int controlSize = CMSG_SPACE(sizeof(int));
        byte* control = stackalloc byte[controlSize];
        var iov = new iovec { iov_base = data, iov_len = 4096 };
        var message = new msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = controlSize };
        long received;
        do received = recvmsg(socketFd, &message, MSG_CMSG_CLOEXEC);
        while (received < 0 && Errno.Last == EINTR);
        if (received < 0)
            throw new IOException($"receiving the terminal from {peer} failed: {Errno.DescribeLast()}");

        // Not Tmds.LibC's CMSG_LEN: it rounds up to 24 where glibc's (what crun and runc send) gives 20.
        cmsghdr* header = CMSG_FIRSTHDR(&message);
        if (header == null || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS
            || header->cmsg_len < (socklen_t)(sizeof(cmsghdr) + sizeof(int)))
            throw new IOException($"{peer} connected to the console socket but sent no terminal file descriptor");
        return *(int*)CMSG_DATA(header);
    }
}
