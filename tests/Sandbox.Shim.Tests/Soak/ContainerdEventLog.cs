using System.Diagnostics;
using System.Text.Json;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests.Soak;

/// <summary>One /tasks/* event seen by `ctr events`.</summary>
public sealed record TaskEvent(string Topic, string ContainerId, string ProcessId, int? ExitStatus);

/// <summary>
/// `ctr events` running in the background, collecting every /tasks/* event of a private containerd. The stream ends
/// when containerd stops; <see cref="RestartAsync"/> opens a new one after a containerd restart (what containerd published
/// while it was down is not replayed, and nothing is published then). Both return once the subscription is in effect:
/// the removal of a namespace created as a probe has been seen.
/// </summary>
public sealed class ContainerdEventLog : IDisposable
{
    private readonly PrivateContainerd _containerd;
    private readonly List<TaskEvent> _events = new();
    private readonly HashSet<string> _probesSeen = new(StringComparer.Ordinal);
    private readonly List<string> _unparsed = new();
    private Process? _ctr;
    private int _probes;

    private ContainerdEventLog(PrivateContainerd containerd)
    {
        _containerd = containerd;
    }

    public static async Task<ContainerdEventLog> StartAsync(PrivateContainerd containerd)
    {
        var log = new ContainerdEventLog(containerd);
        await log.RestartAsync();
        return log;
    }

    public async Task RestartAsync()
    {
        Start();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        CommandResult? create = null;
        while (DateTime.UtcNow < deadline)
        {
            string probe = $"soak-probe-{Interlocked.Increment(ref _probes)}";
            create = await _containerd.CtrAsync(["namespaces", "create", probe], TimeSpan.FromSeconds(30));
            await _containerd.CtrAsync(["namespaces", "remove", probe], TimeSpan.FromSeconds(30));
            for (int i = 0; i < 20 && !ProbeSeen(probe); i++)
                await Task.Delay(50);
            if (ProbeSeen(probe))
                return;
        }
        string events;
        lock (_events) events = string.Join('\n', _unparsed.TakeLast(5));
        throw new TimeoutException($"`ctr events` did not show the removal of a probe namespace within 60 s; last probe: {create}\n" +
                                   $"last lines of `ctr events`:\n{events}");
    }

    private bool ProbeSeen(string probe)
    {
        lock (_events) return _probesSeen.Contains(probe);
    }

    private void Start()
    {
        Stop();
        var startInfo = new ProcessStartInfo("ctr") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "-a", _containerd.GrpcAddress, "events" })
            startInfo.ArgumentList.Add(argument);
        var ctr = Process.Start(startInfo) ?? throw new InvalidOperationException("cannot start ctr events");
        ctr.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
                return;
            if (Parse(e.Data) is { } taskEvent)
                lock (_events) _events.Add(taskEvent);
            else if (e.Data.Contains(" /namespaces/delete ", StringComparison.Ordinal) && e.Data.Contains("soak-probe-", StringComparison.Ordinal))
                lock (_events) _probesSeen.Add(e.Data[e.Data.LastIndexOf("soak-probe-", StringComparison.Ordinal)..].Split('"')[0]); // the JSON's name (2.x also names the namespace before the topic)
            else
                lock (_events) _unparsed.Add(e.Data);
        };
        ctr.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                lock (_events) _unparsed.Add("stderr: " + e.Data);
        };
        ctr.BeginOutputReadLine();
        ctr.BeginErrorReadLine();
        _ctr = ctr;
    }

    /// <summary>The events of one container so far, oldest first.</summary>
    public IReadOnlyList<TaskEvent> For(string containerId)
    {
        lock (_events) return _events.Where(e => e.ContainerId == containerId).ToArray();
    }

    /// <summary>
    /// A line of `ctr events`: "&lt;date&gt; &lt;time&gt; &lt;zone&gt; &lt;zone&gt; &lt;namespace&gt; &lt;topic&gt; &lt;json&gt;",
    /// e.g. "2026-12-04 17:00:00.1 +0000 UTC default /tasks/exit {"container_id":"a","id":"a","exit_status":137,...}".
    /// Null for anything else.
    /// </summary>
    public static TaskEvent? Parse(string line)
    {
        int topicStart = line.IndexOf(" /tasks/", StringComparison.Ordinal);
        int jsonStart = line.IndexOf('{');
        if (topicStart < 0 || jsonStart < topicStart)
            return null;
        string topic = line[(topicStart + 1)..jsonStart].Trim();
        try
        {
            using var json = JsonDocument.Parse(line[jsonStart..]);
            var root = json.RootElement;
            string container = root.TryGetProperty("container_id", out var c) ? c.GetString() ?? "" : "";
            string process = root.TryGetProperty("id", out var p) ? p.GetString() ?? "" : container;
            int? status = root.TryGetProperty("exit_status", out var s) ? s.GetInt32() : topic == "/tasks/exit" ? 0 : null;
            return new TaskEvent(topic, container, process, status);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private void Stop()
    {
        if (_ctr is null)
            return;
        try
        {
            if (!_ctr.HasExited)
                _ctr.Kill();
            _ctr.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }
        _ctr.Dispose();
        _ctr = null;
    }

    public void Dispose() => Stop();
}
