using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Cgroups;
using Sandbox.Runtime.PostMortem;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// Removes what a sandbox whose owner is gone left behind, in the order that makes each step possible: its VM's
/// processes (QEMU, vhost-device-vsock: found by their command line), its host cgroup, every mount below its state
/// directory (deepest first), then the directory. Used by the shim's `delete` after a dead daemon, by a daemon whose
/// VM died, and by `sandboxctl gc`. Idempotent. With a <paramref name="postMortem"/>, the sandbox's post-mortem record is
/// written (reason: <c>PostMortem.Reason</c>) once its processes are gone and before its files go.
/// </summary>
public static class SandboxStateRemoval
{
    /// <summary>Where to keep the post-mortem record of what is removed, and why the sandbox ended.</summary>
    public sealed record PostMortemOf(PostMortemStore Store, string Reason);

    public static async Task RemoveAsync(SandboxStateDirectory state, Action<string> log, CancellationToken cancellationToken,
        PostMortemOf? postMortem = null)
    {
        var metadata = SandboxMetadata.TryRead(state.MetadataFile);
        foreach (var process in await LeftoverVmProcesses.KillAsync(state.Path, cancellationToken).ConfigureAwait(false))
            log($"sandbox {state.SandboxId}: killed leftover process {process.Pid}: {process.CommandLine}");
        if (postMortem is not null && Directory.Exists(state.Path) &&
            postMortem.Store.Write(PostMortemRecord.Capture(state, postMortem.Reason, failed: true)) is { } problem)
            log(problem);
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
