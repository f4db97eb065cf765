using System.Text;

namespace Sandbox.Hypervisors.Processes;

/// <summary>The last lines of a (possibly large, possibly still growing) log file, for error messages.</summary>
public static class ConsoleLogTail
{
    public static string Read(string path, int lines = 20, int maxBytes = 16 * 1024)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var start = Math.Max(0, stream.Length - maxBytes);
            stream.Seek(start, SeekOrigin.Begin);
            var buffer = new byte[stream.Length - start];
            stream.ReadExactly(buffer);
            var text = Encoding.UTF8.GetString(buffer).Replace("\r", "");
            var all = text.Split('\n');
            if (start > 0)
                all = all[1..]; // the first line is probably cut
            var tail = all.Reverse().SkipWhile(string.IsNullOrEmpty).Take(lines).Reverse();
            var result = string.Join('\n', tail);
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
}
