using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Jailer;

/// <summary>Joins a network namespace (a pod's), as nsenter --net does.</summary>
internal static class NetworkNamespaceEntry
{
    public static void Enter(string path)
    {
        int fd = LibCStrings.open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            throw new JailException($"cannot open the network namespace {path}: {Errno.DescribeLast()} (was the pod's namespace removed?)");
        try
        {
            if (setns(fd, CLONE_NEWNET) != 0)
                throw new JailException($"cannot enter the network namespace {path}: {Errno.DescribeLast()}");
        }
        finally
        {
            close(fd);
        }
    }
}
