using Sandbox.Hypervisors.Processes;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// The shim's log lines about one sandbox, kept where an operator finds them after the shim is gone: in memory (the
/// last <see cref="RecentLines"/>, for a post-mortem of a boot that failed before the state directory existed) and, once
/// <see cref="AttachTo"/> names the state directory, in its shim.log with host timestamps (lines logged before that are
/// written first) until <see cref="Detach"/>. Thread-safe.
/// </summary>
public sealed class SandboxJournal
{
    public const string FileName = "shim.log";
    public const int RecentLines = 200;

    private readonly object _gate = new();
    private readonly Queue<string> _recent = new();
    private TimestampedLogFile? _file;

    public void Append(string message)
    {
        var now = DateTime.UtcNow;
        lock (_gate)
        {
            foreach (string line in message.Replace("\r", "").Split('\n'))
            {
                _recent.Enqueue($"{TimestampedLogFile.Format(now)} {line}");
                if (_recent.Count > RecentLines)
                    _recent.Dequeue();
            }
            _file?.Append(message, now);
        }
    }

    /// <summary>From now on lines also go to &lt;<paramref name="stateDirectory"/>&gt;/shim.log, after those kept so far.</summary>
    public void AttachTo(string stateDirectory)
    {
        lock (_gate)
        {
            _file?.Dispose();
            _file = new TimestampedLogFile(Path.Combine(stateDirectory, FileName));
            foreach (string line in _recent)
                _file.Append(line[(TimestampedLogFile.StampLength + 1)..], TimestampedLogFile.TimeOf(line));
        }
    }

    /// <summary>The last lines, each with its time.</summary>
    public IReadOnlyList<string> Recent()
    {
        lock (_gate)
            return _recent.ToArray();
    }

    /// <summary>Lines go to memory only from now on (the state directory is about to go: an open file would keep its
    /// space on /run until the shim exits).</summary>
    public void Detach()
    {
        lock (_gate)
        {
            _file?.Dispose();
            _file = null;
        }
    }
}
