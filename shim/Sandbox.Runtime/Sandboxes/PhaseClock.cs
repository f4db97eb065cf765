using System.Diagnostics;
using System.Globalization;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>The milliseconds each step of a sandbox's boot, or of its stop, took, in order, for one log line.</summary>
public sealed class PhaseClock
{
    private readonly List<(string Name, double Milliseconds)> _phases = [];
    private long _last = Stopwatch.GetTimestamp();

    /// <summary>Ends the phase called <paramref name="name"/> (the time since the previous mark, or since construction).</summary>
    public void Mark(string name)
    {
        long now = Stopwatch.GetTimestamp();
        _phases.Add((name, Stopwatch.GetElapsedTime(_last, now).TotalMilliseconds));
        _last = now;
    }

    /// <summary>"state 3 ms, QEMU restored 212 ms, CreateSandbox 80 ms".</summary>
    public string Describe() =>
        string.Join(", ", _phases.Select(p => $"{p.Name} {p.Milliseconds.ToString("0", CultureInfo.InvariantCulture)} ms"));
}
