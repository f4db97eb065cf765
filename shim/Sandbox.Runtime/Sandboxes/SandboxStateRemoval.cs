using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Cgroups;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// Removes what a sandbox whose owner is gone left behind, in the order that makes each step possible: its VM's
/// processes (QEMU, vhost-device-vsock: found by their command line), its host cgroup, every mount below its state
/// directory (deepest first), then the directory. Used by the shim's `delete` after a dead daemon, by a daemon whose
/// VM died, and by `sandboxctl gc`. Idempotent.
/// </summary>
public static class SandboxStateRemoval
{
    public static async Task RemoveAsync(SandboxStateDirectory state, Action<string> log, CancellationToken cancellationToken)
    {
        var metadata = SandboxMetadata.TryRead(state.MetadataFile);
        foreach (var process in await LeftoverVmProcesses.KillAsync(state.Path, cancellationToken).ConfigureAwait(false))
            log($"sandbox {state.SandboxId}: killed leftover process {process.Pid}: {process.CommandLine}");
        if (metadata?.HostCgroup is { } cgroupPath)
        {
            var cgroup = PodHostCgroup.Existing(state.SandboxId, cgroupPath, HostCgroupMounts.Read());
            foreach (string left in await cgroup.RemoveAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false))
                log($"sandbox {state.SandboxId}: its host cgroup could not be removed: {left}");
        }
        foreach (var mountPoint in MountTable.MountPointsBelow(state.Path).OrderByDescending(m => m.Length))
        {
            MountTable.DetachAll(mountPoint);
            log($"sandbox {state.SandboxId}: detached {mountPoint}");
        }
        state.Delete();
    }
}
