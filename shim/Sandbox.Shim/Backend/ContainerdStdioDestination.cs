using Sandbox.Native;
using Sandbox.Ttrpc;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Backend;

/// <summary>
/// Opens the stdio destinations containerd names for a process (<see cref="StdioPath"/>: a FIFO the client created,
/// or a <c>file://</c> URI), for every backend. Neither open blocks when the client has not opened its end yet.
/// Output FIFOs are opened O_RDWR (never blocks, keeps the FIFO usable if the client reopens it, and lets
/// <see cref="ContainerdFifoDrain"/> see how much the client has not read yet); closing an output fd is what gives the
/// client end of file. The stdin FIFO is opened O_RDONLY | O_NONBLOCK, as runc's shim
/// does, so that the client closing its end is seen (POLLHUP): `ctr run` relies on that, because it sends CloseIO
/// only when its stdin ends after the task was created, which a slow Create (a VM boot) easily misses.
/// </summary>
internal static class ContainerdStdioDestination
{
    /// <summary>stdin: a FIFO (O_RDONLY | O_NONBLOCK, read it with <see cref="ContainerdStdinPump"/>) or a file to read.</summary>
    public static int OpenStdin(string path, string owner) =>
        StdioPath.Parse(path, owner, "stdin") is { Kind: not StdioPathKind.Binary } uri
            ? Open(uri, owner, "stdin", O_RDONLY | O_NONBLOCK)
            : throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: stdin {path}: a logging binary cannot be stdin");

    /// <summary>
    /// stdout or stderr: a FIFO (O_RDWR, blocking writes) or a file to append to (created if missing). A logging binary
    /// serves both streams at once: <see cref="ContainerdOutputs"/> starts it.
    /// </summary>
    public static OutputDestination OpenOutput(string path, string owner, string stream)
    {
        var uri = StdioPath.Parse(path, owner, stream);
        if (uri.Kind == StdioPathKind.Binary)
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                $"{owner}: {stream} {path}: a logging binary takes stdout and stderr together; give it as stdout (containerd does)");
        return new OutputDestination(Open(uri, owner, stream, O_RDWR), uri.Kind == StdioPathKind.Fifo);
    }

    private static int Open(StdioPath uri, string owner, string stream, int fifoFlags)
    {
        int fd = uri.Kind == StdioPathKind.File
            ? LibCStrings.open(uri.Path, (stream == "stdin" ? O_RDONLY : O_WRONLY | O_APPEND | O_CREAT) | O_CLOEXEC, 0b110_100_000)
            : LibCStrings.open(uri.Path, fifoFlags | O_CLOEXEC, 0);
        if (fd < 0)
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                $"{owner}: cannot open {stream} {uri.Path}: {Errno.DescribeLast()}");
        return fd;
    }
}
