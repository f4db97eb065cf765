using Sandbox.Ttrpc;

namespace Sandbox.Shim.Backend;

public enum StdioPathKind
{
    Fifo,
    File,
    Binary,
}

/// <summary>
/// A stdio path from containerd: a plain path is a FIFO the client created; <c>file:///path</c> is a file to append
/// to; <c>binary:///path?name=value</c> is a logging binary to start (<see cref="LoggingBinary"/>), with the query's
/// names and values as its arguments, in their order. Any other scheme is refused with a clear error.
/// </summary>
public readonly record struct StdioPath(StdioPathKind Kind, string Path, IReadOnlyList<string> Arguments)
{
    public static StdioPath Parse(string value, string owner, string stream)
    {
        if (value.StartsWith("file://", StringComparison.Ordinal))
            return new StdioPath(StdioPathKind.File, Uri.UnescapeDataString(value["file://".Length..]), Array.Empty<string>());
        if (value.StartsWith("binary://", StringComparison.Ordinal))
            return ParseBinary(value, owner, stream);
        if (value.Contains("://", StringComparison.Ordinal))
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                $"{owner}: {stream} {value}: unsupported stdio URI scheme; use a FIFO path, file:///PATH or binary:///PATH");
        return new StdioPath(StdioPathKind.Fifo, value, Array.Empty<string>());
    }

    private static StdioPath ParseBinary(string value, string owner, string stream)
    {
        string rest = value["binary://".Length..];
        int query = rest.IndexOf('?');
        string path = Uri.UnescapeDataString(query < 0 ? rest : rest[..query]);
        if (!path.StartsWith('/'))
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                $"{owner}: {stream} {value}: a logging binary needs an absolute path (binary:///usr/local/bin/logger)");
        var arguments = new List<string>();
        if (query >= 0)
        {
            foreach (string pair in rest[(query + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                int equals = pair.IndexOf('=');
                arguments.Add(Uri.UnescapeDataString((equals < 0 ? pair : pair[..equals]).Replace('+', ' ')));
                if (equals >= 0)
                    arguments.Add(Uri.UnescapeDataString(pair[(equals + 1)..].Replace('+', ' ')));
            }
        }
        return new StdioPath(StdioPathKind.Binary, path, arguments);
    }
}
