using System.Diagnostics;
using System.Globalization;

namespace Sandbox.Agent;

/// <summary>One-line messages to stderr (the guest console), stamped as the kernel stamps its own lines (seconds since
/// the guest booted, CLOCK_MONOTONIC), so that `sandboxctl logs` puts them in time order beside the kernel's.</summary>
public static class AgentLog
{
    public static void Write(string message)
    {
        double uptime = Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{uptime,12:F6}] sandbox-agent: {message}"));
    }

    /// <summary>Milliseconds since <paramref name="startTimestamp"/> (a <see cref="Stopwatch.GetTimestamp"/>), as text.</summary>
    public static string Milliseconds(long startTimestamp) =>
        Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture) + " ms";

    /// <summary>The first 12 characters of a container id: enough to tell containers apart in the log (as Docker shows them).</summary>
    public static string ShortId(string id) => id.Length > 12 ? id[..12] : id;
}
