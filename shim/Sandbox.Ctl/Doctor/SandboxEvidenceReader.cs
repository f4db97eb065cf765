using Sandbox.Hypervisors.Processes;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Host;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl.Doctor;

/// <summary>
/// Finds the sandbox an operator names (a sandbox id, a CRI pod sandbox id, or a container id) among the live state
/// directories, then among the post-mortem records, and reads its <see cref="SandboxEvidence"/>. Only reads files and
/// asks a live sandbox's agent one bounded question; `sandboxctl check`'s host probes run only after a failed boot.
/// </summary>
public static partial class SandboxEvidenceReader
{
    private const int TailLines = 40;

    /// <summary>The evidence, or null when no sandbox, container or record has that id.</summary>
    public static async Task<SandboxEvidence?> ReadAsync(string stateRoot, string id, CancellationToken cancellationToken)
    {
        if (SandboxLookup.Find(stateRoot, id) is { } state)
            return await FromStateDirectoryAsync(state, cancellationToken);
        var store = new PostMortemStore(stateRoot);
        return store.Find(id) is { } record ? await FromPostMortemAsync(record, store.PathOf(record.SandboxId), cancellationToken) : null;
    }

    private static async Task<SandboxEvidence> FromStateDirectoryAsync(SandboxStateDirectory state, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        var liveness = SandboxOwnership.Of(state, now);
        var metadata = SandboxMetadata.TryRead(state.MetadataFile);
        bool vmmRunning = metadata?.VmmRunsIn(state.Path) == true;
        var files = new QemuStateFiles(state.Path);
        GuestInfoQuery.Answer? answer = null;
        if (liveness == SandboxLiveness.Live && vmmRunning && metadata?.AgentDialer() is { } dialer)
            answer = await GuestInfoQuery.AskAsync(dialer, state.SandboxId, cancellationToken);
        string events = Path.Combine(state.Path, SandboxEventLog.FileName);
        return new SandboxEvidence
        {
            SandboxId = state.SandboxId,
            Where = state.Path,
            Liveness = SandboxOwnership.Describe(liveness),
            ShimPid = SandboxOwnerFile.Recorded(state.Path)?.Pid,
            Metadata = metadata,
            VmmRunning = vmmRunning,
            Guest = answer?.Info,
            AgentError = answer?.Error ?? (vmmRunning ? null : "QEMU does not run"),
            Containers = state.ContainerIds(),
            Events = SandboxEventLog.Read(state.Path),
            EventsSource = events,
            Console = Tail(files.ConsoleLog),
            Qemu = Tail(files.QemuLog),
            VsockDaemon = Tail(files.VsockDaemonLog),
            Shim = Tail(Path.Combine(state.Path, SandboxJournal.FileName)),
            Now = now,
        };
    }

    private static async Task<SandboxEvidence> FromPostMortemAsync(PostMortemRecord record, string path, CancellationToken cancellationToken)
    {
        IReadOnlyList<HostCheckItem> hostProblems = [];
        if (record.Failed && record.Reason.StartsWith(PostMortemRecord.BootFailedPrefix, StringComparison.Ordinal) &&
            HostFacts().IsMatch(record.Error ?? record.Reason))
        {
            var report = await new HostCheck().RunAsync(cancellationToken);
            hostProblems = report.Items.Where(i => !i.Ok).ToArray();
        }
        return new SandboxEvidence
        {
            SandboxId = record.SandboxId,
            Where = path,
            PostMortem = record,
            HostProblems = hostProblems,
            Metadata = record.Metadata,
            Containers = record.Containers,
            Events = record.Events,
            EventsSource = $"{path} (events)",
            Console = new LogTail($"{path} (console.log)", record.ConsoleTail),
            Qemu = new LogTail($"{path} (qemu.log)", record.QemuTail),
            VsockDaemon = new LogTail($"{path} (vsockd.log)", record.VsockDaemonTail),
            Shim = new LogTail($"{path} (shim.log)", record.ShimTail),
        };
    }

    private static LogTail Tail(string path) => new(path, ConsoleLogTail.ReadLines(path, TailLines));

    /// <summary>Errors about the host (what `sandboxctl check` probes): only then are its probes worth their time.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"KVM|kvm|vsock|/dev/net/tun|qemu-system|QEMU .*not found|cannot run")]
    private static partial System.Text.RegularExpressions.Regex HostFacts();
}
