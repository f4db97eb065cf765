namespace Sandbox.Ctl.Metrics;

/// <summary>What the guest's agent said: its memory, and its uptime when the agent started listening (the boot).</summary>
public sealed record GuestSample(ulong MemoryTotalBytes, ulong MemoryAvailableBytes, double BootSeconds, double AgentRpcSeconds);

/// <summary>One sandbox's figures for `sandboxctl metrics`. <see cref="Guest"/> is null when the agent did not answer
/// (<see cref="AgentError"/> says why); <see cref="Vmm"/> is null when QEMU does not run.</summary>
public sealed record SandboxSample(string SandboxId, string State, ProcessSample? Vmm, IReadOnlyList<ProcessSample> Helpers,
    ProcessSample? Shim, GuestSample? Guest, string? AgentError, int Containers)
{
    /// <summary>PSS of everything the sandbox costs the host: QEMU, its helpers and its shim.</summary>
    public long HostPssBytes => (Vmm?.PssBytes ?? 0) + Helpers.Sum(h => h.PssBytes) + (Shim?.PssBytes ?? 0);
}
