using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Agent;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl.Metrics;

/// <summary>
/// Samples every sandbox under a state root, as kata-monitor does for Kata: QEMU's, its helpers' and the shim's memory
/// and CPU from /proc, and the guest's memory, boot time and one RPC's round trip from its agent (GetGuestInfo over the
/// sandbox's vsock; every call bounded by <see cref="GuestInfoQuery.Timeout"/>). A sandbox whose agent does not answer is still
/// reported, with <c>sandbox_up 0</c>.
/// </summary>
public static class SandboxMetricsCollector
{
    public static async Task<IReadOnlyList<SandboxSample>> CollectAsync(string stateRoot, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        var samples = await Task.WhenAll(SandboxStateDirectory.List(stateRoot)
            .Select(state => SampleAsync(state, SandboxOwnership.Of(state, now), cancellationToken)));
        return samples;
    }

    private static async Task<SandboxSample> SampleAsync(SandboxStateDirectory state, SandboxLiveness liveness, CancellationToken cancellationToken)
    {
        var metadata = SandboxMetadata.TryRead(state.MetadataFile);
        var vmm = metadata?.VmmPid is { } vmmPid ? ProcessSample.Read(vmmPid) : null;
        var helpers = LeftoverVmProcesses.Find(state.Path)
            .Where(p => p.Pid != metadata?.VmmPid)
            .Select(p => ProcessSample.Read(p.Pid)).OfType<ProcessSample>().ToList();
        var owner = SandboxOwnerFile.Recorded(state.Path);
        var shim = owner is { IsAlive: true } && owner.Pid != Environment.ProcessId ? ProcessSample.Read(owner.Pid) : null;
        int containers = Directory.Exists(state.SharedDirectory)
            ? Directory.EnumerateDirectories(state.SharedDirectory).Count(d => Directory.Exists(Path.Combine(d, "rootfs")))
            : 0;

        GuestSample? guest = null;
        string? agentError;
        if (metadata?.AgentDialer() is not { } dialer)
            agentError = $"{state.MetadataFile} does not say where the agent listens (the VM is still booting, or an older shim wrote it)";
        else if (vmm is null)
            agentError = "QEMU does not run";
        else
            (guest, agentError) = await AskAgentAsync(dialer, state.SandboxId, cancellationToken);
        return new SandboxSample(state.SandboxId, SandboxOwnership.Describe(liveness), vmm, helpers, shim, guest, agentError, containers);
    }

    private static async Task<(GuestSample?, string?)> AskAgentAsync(IAgentDialer dialer, string sandboxId, CancellationToken cancellationToken)
    {
        var answer = await GuestInfoQuery.AskAsync(dialer, sandboxId, cancellationToken);
        return answer.Info is { } info
            ? (new GuestSample(info.MemTotalBytes, info.MemAvailableBytes, info.AgentReadyUptimeSeconds, answer.RoundTrip.TotalSeconds), null)
            : (null, answer.Error);
    }
}
