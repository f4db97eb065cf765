using System.Globalization;
using System.Text.RegularExpressions;
using Sandbox.Hypervisors.Processes;

namespace Sandbox.Ctl.Logs;

/// <summary>One line of a sandbox's logs, with the time it was written and where it came from.</summary>
public sealed record LogEntry(DateTime Time, string Source, string Text)
{
    public override string ToString() =>
        $"{TimestampedLogFile.Format(Time)} {Source,-7} {Text}";
}

/// <summary>
/// How the lines of each log get their time: shim.log, qemu.log and vsockd.log carry the host's time
/// (<see cref="TimestampedLogFile"/>); console.log carries the guest's seconds since boot ("[   1.234567]", the kernel's
/// and the agent's lines), placed after <see cref="BootedAt"/> (QEMU's start, from sandbox.json). A line without a
/// time (a continuation, a program's own output on the console) takes the time of the line before it.
/// </summary>
public sealed partial class LogLineClock(string source, bool console, DateTime bootedAt)
{
    private DateTime _last = bootedAt;

    public string Source { get; } = source;
    public DateTime BootedAt { get; } = bootedAt;

    public LogEntry Read(string line)
    {
        if (!console)
        {
            if (TimestampedLogFile.TimeOf(line) is { } time)
            {
                _last = time;
                return new LogEntry(time, Source, line[(TimestampedLogFile.StampLength + 1)..]);
            }
            return new LogEntry(_last, Source, line);
        }
        var stamp = GuestStamp().Match(line);
        if (!stamp.Success)
            return new LogEntry(_last, Source, line);
        _last = BootedAt.AddSeconds(double.Parse(stamp.Groups["seconds"].Value, CultureInfo.InvariantCulture));
        string text = stamp.Groups["text"].Value;
        return new LogEntry(_last, text.StartsWith("sandbox-agent: ", StringComparison.Ordinal) ? "agent" : Source, text);
    }

    [GeneratedRegex(@"^\[\s*(?<seconds>\d+\.\d+)\] ?(?<text>.*)$")]
    private static partial Regex GuestStamp();
}
