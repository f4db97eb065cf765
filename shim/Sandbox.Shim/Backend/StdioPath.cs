using Sandbox.Ttrpc;

namespace Sandbox.Shim.Backend;

public enum StdioPathKind
{
    Fifo,
    File,
}

/// <summary>
/// A stdio path from containerd: a plain path is a FIFO the client created; <c>file:///path</c> is a file to append
/// to. <c>binary://</c> (a logging binary) is refused with a clear error.
/// </summary>
public readonly record struct StdioPath(StdioPathKind Kind, string Path)
{
    public static StdioPath Parse(string value, string owner, string stream)
    {
        if (value.StartsWith("file://", StringComparison.Ordinal))
            return new StdioPath(StdioPathKind.File, Uri.UnescapeDataString(value["file://".Length..]));
        if (value.StartsWith("binary://", StringComparison.Ordinal))
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                $"{owner}: {stream} {value}: binary:// logging is not supported by the sandbox shim; use a FIFO or file://");
        if (value.Contains("://", StringComparison.Ordinal))
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                $"{owner}: {stream} {value}: unsupported stdio URI scheme; use a FIFO path or file://");
        return new StdioPath(StdioPathKind.Fifo, value);
    }
}
