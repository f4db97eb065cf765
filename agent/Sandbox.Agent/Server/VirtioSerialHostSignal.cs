using System.Runtime.InteropServices;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Server;

/// <summary>
/// Tells the virtio-serial listeners that a host has connected to (or left) a port. The guest kernel's virtio console
/// sends SIGIO to the owner of a port opened with O_ASYNC when QEMU reports the port's host side opened or closed
/// (VIRTIO_CONSOLE_PORT_OPEN), and a port offers no other wait for it: it polls POLLHUP until a host holds its chardev,
/// and a read gives end-of-file. One registration serves every port; a listener waits on <see cref="Next"/>, taken
/// before it looks at its port, so a signal that arrives between the look and the wait is not lost.
/// </summary>
public static class VirtioSerialHostSignal
{
    private static readonly object Gate = new();
    private static TaskCompletionSource _next = NewSignal();
    private static PosixSignalRegistration? _registration;

    /// <summary>Completes at the next SIGIO after this call.</summary>
    public static Task Next()
    {
        lock (Gate)
        {
            _registration ??= PosixSignalRegistration.Create((PosixSignal)SIGIO, context =>
            {
                context.Cancel = true; // SIGIO's default action ends the process
                TaskCompletionSource fired;
                lock (Gate)
                {
                    fired = _next;
                    _next = NewSignal();
                }
                fired.TrySetResult();
            });
            return _next.Task;
        }
    }

    /// <summary>Asks for SIGIO to this process when <paramref name="port"/>'s host side opens or closes. False (errno
    /// set) when the port refuses: the caller then only has its timer.</summary>
    public static bool Enable(int port)
    {
        return fcntl(port, F_SETOWN, getpid()) == 0 && FileDescriptors.TrySetStatusFlag(port, O_ASYNC, on: true);
    }

    /// <summary>Stops the signals of <paramref name="port"/> (best effort): once a host holds it, the kernel would also
    /// signal every arrival of data.</summary>
    public static void Disable(int port) => FileDescriptors.TrySetStatusFlag(port, O_ASYNC, on: false);

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
