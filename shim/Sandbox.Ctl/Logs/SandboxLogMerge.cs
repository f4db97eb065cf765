namespace Sandbox.Ctl.Logs;

/// <summary>Lines of several logs in time order; lines with the same time keep their order within their log.</summary>
public static class SandboxLogMerge
{
    public static IReadOnlyList<LogEntry> Merge(IEnumerable<IReadOnlyList<LogEntry>> logs) =>
        logs.SelectMany((entries, log) => entries.Select((entry, index) => (entry, log, index)))
            .OrderBy(x => x.entry.Time).ThenBy(x => x.log).ThenBy(x => x.index)
            .Select(x => x.entry).ToList();
}
