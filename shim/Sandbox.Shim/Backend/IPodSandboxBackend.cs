namespace Sandbox.Shim.Backend;

/// <summary>
/// A pod sandbox as containerd 2.x's Sandbox API creates it (<c>sandboxer = "shim"</c>): no pause container comes
/// through the task API, the shim starts the sandbox itself. <see cref="NetworkNamespacePath"/> is the namespace
/// CRI's CNI configured ("" = none: loopback only); <see cref="Annotations"/> carry the pod's resources the way CRI's
/// sandbox container spec does (io.kubernetes.cri.sandbox-cpu-quota, -cpu-period, -memory), so the VM is sized alike.
/// </summary>
public sealed record PodSandboxSpec(
    string SandboxId,
    string Hostname,
    string NetworkNamespacePath,
    IReadOnlyDictionary<string, string> Annotations,
    string CgroupsPath = "");

/// <summary>The running sandbox: the pid containerd reports for it, and its end (exit status) once it stops.</summary>
public sealed record StartedPodSandbox(uint Pid, Task<uint> Exited);

/// <summary>
/// A backend that can run a pod sandbox without a pause container from the task API (the VM backend). The sandbox's
/// containers then arrive through the task API as usual, with the sandbox's id in io.kubernetes.cri.sandbox-id.
/// </summary>
public interface IPodSandboxBackend
{
    /// <summary>Starts the sandbox (for the VM backend: boots the VM and the guest process holding the pod's namespaces).</summary>
    Task<StartedPodSandbox> StartPodSandboxAsync(PodSandboxSpec spec, CancellationToken cancellationToken);

    /// <summary>Stops the sandbox and whatever still runs in it; <see cref="StartedPodSandbox.Exited"/> completes.</summary>
    Task StopPodSandboxAsync(string sandboxId, TimeSpan timeout, CancellationToken cancellationToken);
}
