using System.Text;

namespace Sandbox.Ctl.Logs;

/// <summary>Reads the lines a log file gained since the last call (complete lines only; a line still being written
/// waits for its end), each placed in time by its <see cref="LogLineClock"/>.</summary>
public sealed class LogFileFollower(string path, LogLineClock clock)
{
    private long _offset;
    private string _partial = "";

    public string Path { get; } = path;

    public IReadOnlyList<LogEntry> ReadNew()
    {
        byte[] bytes;
        try
        {
            using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length < _offset)
                _offset = 0; // replaced
            stream.Seek(_offset, SeekOrigin.Begin);
            bytes = new byte[stream.Length - _offset];
            stream.ReadExactly(bytes);
            _offset += bytes.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
        string text = _partial + Encoding.UTF8.GetString(bytes).Replace("\r", "");
        int end = text.LastIndexOf('\n');
        _partial = end < 0 ? text : text[(end + 1)..];
        if (end < 0)
            return [];
        return text[..end].Split('\n').Select(clock.Read).ToList();
    }
}
