using System.Text;

namespace Sandbox.Hypervisors.Processes;

/// <summary>The last lines of a (possibly large, possibly still growing) log file, for error messages.</summary>
public static class ConsoleLogTail
{
    public static string Read(string path, int lines = 20, int maxBytes = 16 * 1024)
    {
        try
        {
            var result = string.Join('\n', ReadLines(path, lines, maxBytes, throwIfMissing: true));
            return result.Length == 0 ? "(console log is empty)" : result;
        }
        catch (FileNotFoundException)
        {
            return $"(no console log at {path})";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"(console log {path} unreadable: {e.Message})";
        }
    }

    /// <summary>The last <paramref name="lines"/> non-empty-ended lines among the file's last <paramref name="maxBytes"/>;
    /// empty when the file is missing or unreadable (unless <paramref name="throwIfMissing"/>).</summary>
    public static IReadOnlyList<string> ReadLines(string path, int lines, int maxBytes = 64 * 1024, bool throwIfMissing = false)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var start = Math.Max(0, stream.Length - maxBytes);
            stream.Seek(start, SeekOrigin.Begin);
            var buffer = new byte[stream.Length - start];
            stream.ReadExactly(buffer);
            var all = Encoding.UTF8.GetString(buffer).Replace("\r", "").Split('\n');
            if (start > 0)
                all = all[1..]; // the first line is probably cut
            return all.Reverse().SkipWhile(string.IsNullOrEmpty).Take(lines).Reverse().ToArray();
        }
        catch (Exception e) when (!throwIfMissing && e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
