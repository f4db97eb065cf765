namespace Sandbox.Shim.Daemon;

public enum ShimLogLevel
{
    Debug,
    Info,
    Warning,
    Error,

    /// <summary>Nothing at all: `start` shares one pipe for stdout and stderr, and containerd reads it as the address.</summary>
    Silent,
}

/// <summary>
/// The shim's log: lines on stderr. For the daemon stderr is &lt;bundle&gt;/log, a FIFO containerd copies into its
/// own log; for `start` and `delete` it is what containerd reports when they fail.
/// </summary>
public sealed class ShimLog
{
    private readonly string _context;
    private readonly ShimLogLevel _minimum;
    private readonly object _gate = new();

    public ShimLog(string containerdNamespace, string id, ShimLogLevel minimum)
    {
        _context = $"namespace={containerdNamespace} id={id} pid={Environment.ProcessId}";
        _minimum = minimum;
    }

    public void Debug(string message) => Write(ShimLogLevel.Debug, "debug", message);

    public void Info(string message) => Write(ShimLogLevel.Info, "info", message);

    public void Warn(string message) => Write(ShimLogLevel.Warning, "warning", message);

    public void Error(string message) => Write(ShimLogLevel.Error, "error", message);

    private void Write(ShimLogLevel severity, string level, string message)
    {
        if (severity < _minimum)
            return;
        string line = $"time=\"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffffffZ}\" level={level} msg=\"{Escape(message)}\" runtime=sandbox {_context}";
        lock (_gate)
        {
            try
            {
                Console.Error.WriteLine(line);
            }
            catch (IOException)
            {
                // nobody reads the log any more (containerd gone); the shim keeps working
            }
        }
    }

    /// <summary>The message as one logfmt value: quotes, backslashes and every control character escaped, so that text
    /// from a guest or a request (an agent's error message) cannot end the line or forge another.</summary>
    internal static string Escape(string message)
    {
        var escaped = new System.Text.StringBuilder(message.Length + 8);
        foreach (char c in message)
        {
            switch (c)
            {
                case '\\': escaped.Append("\\\\"); break;
                case '"': escaped.Append("\\\""); break;
                case '\n': escaped.Append("\\n"); break;
                case '\r': escaped.Append("\\r"); break;
                case '\t': escaped.Append("\\t"); break;
                default:
                    if (char.IsControl(c))
                        escaped.Append($"\\u{(int)c:x4}");
                    else
                        escaped.Append(c);
                    break;
            }
        }
        return escaped.ToString();
    }
}
