using System.Diagnostics;

namespace Sandbox.Shim.Daemon;

/// <summary>
/// Gives the daemon's garbage back to the system once it goes quiet. A shim allocates a few MiB while it creates and
/// starts a container (VM boot, QMP, agent calls) and then idles for the container's whole life; the GC keeps the
/// space it grew into (about 6 MiB of the 21 MiB the daemon used to keep resident). Every second this looks at how
/// much the process allocated: when the last second allocated (almost) nothing and enough was allocated since the last
/// trim to be worth it, it runs one compacting, decommitting collection (<see cref="GCCollectionMode.Aggressive"/>),
/// a few milliseconds for the shim's small heap. A busy shim is never interrupted; a chatty container (a log line a
/// second) costs one such collection per <see cref="WorthTrimmingBytes"/> of allocations.
/// </summary>
public sealed class IdleMemoryTrimmer : IDisposable
{
    /// <summary>How often the allocation counter is looked at.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    /// <summary>A period that allocated less than this counts as quiet.</summary>
    public const long QuietBytes = 64 * 1024;

    /// <summary>No trim until at least this much was allocated since the last one.</summary>
    public const long WorthTrimmingBytes = 1024 * 1024;

    private readonly Func<long> _allocatedBytes;
    private readonly Action _trim;
    private readonly Action<string> _log;
    private readonly Timer? _timer;
    private readonly object _gate = new();
    private long _lastSample;
    private long _atLastTrim;

    /// <summary>Starts watching this process's allocations; <paramref name="log"/> gets one debug line per trim.</summary>
    public IdleMemoryTrimmer(Action<string> log)
        : this(() => GC.GetTotalAllocatedBytes(precise: false), CollectAndDecommit, log, startTimer: true)
    {
    }

    /// <summary>For tests: another allocation counter and trim, and no timer (call <see cref="Tick"/>).</summary>
    internal IdleMemoryTrimmer(Func<long> allocatedBytes, Action trim, Action<string> log, bool startTimer)
    {
        _allocatedBytes = allocatedBytes;
        _trim = trim;
        _log = log;
        _lastSample = _atLastTrim = allocatedBytes();
        if (startTimer)
            _timer = new Timer(_ => Tick(), null, Period, Period);
    }

    /// <summary>One look at the counter; trims when the process went quiet after allocating enough. Returns whether it trimmed.</summary>
    internal bool Tick()
    {
        lock (_gate)
        {
            long now = _allocatedBytes();
            bool quiet = now - _lastSample < QuietBytes;
            _lastSample = now;
            if (!quiet || now - _atLastTrim < WorthTrimmingBytes)
                return false;

            long heapBefore = GC.GetTotalMemory(forceFullCollection: false);
            var clock = Stopwatch.StartNew();
            _trim();
            _atLastTrim = _lastSample = _allocatedBytes();
            _log(FormattableString.Invariant(
                $"idle: heap trimmed from {heapBefore / 1024} KiB to {GC.GetTotalMemory(forceFullCollection: false) / 1024} KiB in {clock.Elapsed.TotalMilliseconds:0.0} ms"));
            return true;
        }
    }

    /// <summary>A full, compacting collection that also returns the freed regions to the system.</summary>
    private static void CollectAndDecommit() =>
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    public void Dispose() => _timer?.Dispose();
}
