using System.Globalization;
using System.Text;

namespace Sandbox.Hypervisors.Processes;

/// <summary>
/// A log file of one sandbox's state directory (qemu.log, vsockd.log, shim.log): each line prefixed with the host's
/// UTC time, so that `sandboxctl logs` can merge files in time order. Bounded: past <see cref="MaxBytes"/> one last
/// line says so and the rest is dropped (a VMM looping on an error must not fill /run). Thread-safe; write errors are
/// swallowed (a log must never fail the sandbox).
/// </summary>
public sealed class TimestampedLogFile : IDisposable
{
    public const long MaxBytes = 4 << 20;
    /// <summary>The prefix's format: 2026-12-05T11:52:13.123Z, then one space.</summary>
    public const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
    /// <summary>Characters of the formatted time.</summary>
    public const int StampLength = 24;

    private readonly object _gate = new();
    private FileStream? _stream;
    private long _written;

    public TimestampedLogFile(string path)
    {
        Path = path;
        try
        {
            _stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            _written = _stream.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _stream = null;
        }
    }

    public string Path { get; }

    /// <summary>Appends <paramref name="message"/>; its later lines are indented under the first.</summary>
    public void Append(string message, DateTime? time = null)
    {
        string stamp = Format(time ?? DateTime.UtcNow);
        var text = new StringBuilder();
        bool first = true;
        foreach (string line in message.Replace("\r", "").Split('\n'))
        {
            text.Append(stamp).Append(first ? " " : "   ").Append(line).Append('\n');
            first = false;
        }
        byte[] bytes = Encoding.UTF8.GetBytes(text.ToString());
        lock (_gate)
        {
            if (_stream is null)
                return;
            try
            {
                if (_written + bytes.Length > MaxBytes)
                {
                    _stream.Write(Encoding.UTF8.GetBytes($"{stamp} (log reached {MaxBytes >> 20} MiB: the rest is dropped)\n"));
                    _stream.Dispose();
                    _stream = null;
                    return;
                }
                _stream.Write(bytes);
                _stream.Flush();
                _written += bytes.Length;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                _stream = null; // the state directory went away
            }
        }
    }

    public static string Format(DateTime utc) => utc.ToUniversalTime().ToString(TimeFormat, CultureInfo.InvariantCulture);

    /// <summary>The time of a line this class wrote, or null for any other line.</summary>
    public static DateTime? TimeOf(string line) =>
        line.Length >= StampLength && DateTime.TryParseExact(line.AsSpan(0, StampLength), TimeFormat, CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var time)
            ? time
            : null;

    public void Dispose()
    {
        lock (_gate)
        {
            _stream?.Dispose();
            _stream = null;
        }
    }
}
