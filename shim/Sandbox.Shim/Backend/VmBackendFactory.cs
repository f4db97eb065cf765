namespace Sandbox.Shim.Backend;

/// <summary>
/// The VM backend: every pod in its own QEMU VM, driven through the host runtime library (shim/Sandbox.Runtime).
///
/// ===== PLUG-IN POINT FOR Sandbox.Runtime =====
/// Sandbox.Runtime is being written; until it provides an <see cref="ISandboxBackend"/> this factory refuses to
/// run, and `start` fails with the message below, so that containerd reports it instead of a dead shim.
/// To plug it in: reference Sandbox.Runtime from Sandbox.Shim.csproj, return its backend from <see cref="Create"/>,
/// check the host (KVM/QEMU, guest image) in <see cref="EnsureUsable"/>, and call its SandboxCleanup for the
/// container's state directory in <see cref="CleanupAfterDeadShimAsync"/>.
/// </summary>
public sealed class VmBackendFactory : ISandboxBackendFactory
{
    private const string NotWiredYet =
        "the VM backend (Sandbox.Runtime) is not wired into containerd-shim-sandbox-v2 yet; " +
        "set SANDBOX_SHIM_BACKEND=runc in containerd's environment to run containers with the host runc backend";

    public string Name => "vm";

    public void EnsureUsable(ShimContext context) => throw new InvalidOperationException(NotWiredYet);

    public ISandboxBackend Create(ShimContext context) => throw new InvalidOperationException(NotWiredYet);

    public Task CleanupAfterDeadShimAsync(ShimContext context, string containerId, CancellationToken cancellationToken)
    {
        // ===== CALL SITE: Sandbox.Runtime's SandboxCleanup(<state dir of containerId>) goes here. =====
        // Until then there is no VM state to clean: the VM backend cannot have created any.
        context.Log($"container {containerId}: no VM state to clean up (the VM backend is not wired in yet)");
        return Task.CompletedTask;
    }
}
