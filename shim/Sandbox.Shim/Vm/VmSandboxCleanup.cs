using Sandbox.Runtime.Cgroups;
using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Configuration;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Rootfs;
using Sandbox.Shim.Start;

namespace Sandbox.Shim.Vm;

/// <summary>
/// What the `delete` subcommand does for the VM backend when no live daemon serves a container any more (the daemon
/// was SIGKILLed, or it has just deleted the container in a normal teardown). Idempotent and quick:
/// 1. the container's sandbox state directory is the one its bundle points to (<see cref="StateDirectoryPointer"/>,
///    written at Create: the daemon may have used a ConfigPath that `delete` is not told), else the one of its
///    <c>io.kubernetes.cri.sandbox-id</c> annotation (in &lt;bundle&gt;/config.json), else of the container itself, under
///    the configured state root; without that directory there is nothing to do;
/// 2. the container's rootfs bind in the sandbox share is detached and its directory removed;
/// 3. when the container is the sandbox itself, or no other container is left in the share, the sandbox goes too:
///    if its owning daemon still runs (<see cref="SandboxOwnerFile"/>), it may be stopping the VM itself, so wait a little
///    for it, then send it SIGTERM (containerd no longer talks to it) and wait again; once it is gone, kill what is
///    left of the VM (QEMU, vhost-device-vsock), detach every mount below the state
///    directory and remove it.
/// </summary>
internal static class VmSandboxCleanup
{
    /// <summary>How long a still-running owner daemon gets to finish stopping its VM, before and again after it is sent
    /// SIGTERM. Both waits fit in the 5 s containerd gives `delete` before killing it.</summary>
    public static readonly TimeSpan DefaultOwnerExitWait = TimeSpan.FromSeconds(2);

    /// <summary>How often the owner daemon is looked for while it stops its VM. containerd 1.6 waits for `delete` before
    /// `ctr run --rm` returns, and the daemon needs ~60-90 ms under TCG: a coarse poll would add up to its whole period.</summary>
    private static readonly TimeSpan OwnerPollInterval = TimeSpan.FromMilliseconds(10);

    public static async Task CleanupAfterDeadShimAsync(SandboxConfiguration configuration, string bundle, string containerId,
        Action<string> log, CancellationToken cancellationToken, TimeSpan? ownerExitWait = null)
    {
        SandboxStateDirectory state;
        try
        {
            state = StateDirectoryPointer.Read(bundle) is { } path
                ? new SandboxStateDirectory(Path.GetDirectoryName(path)!, Path.GetFileName(path))
                : new SandboxStateDirectory(configuration.ResolveStateRoot(), SandboxIdOf(bundle, containerId));
        }
        catch (ArgumentException e)
        {
            log($"container {containerId}: no sandbox state to clean up: {e.Message}");
            return;
        }
        string sandboxId = state.SandboxId;
        if (!Directory.Exists(state.Path))
            return;

        try
        {
            RootfsShare.Remove(RootfsShare.ContainerDirectory(state.SharedDirectory, containerId));
        }
        catch (IOException e)
        {
            log($"container {containerId}: {e.Message}");
        }

        bool othersLeft = Directory.Exists(state.SharedDirectory) && Directory.EnumerateFileSystemEntries(state.SharedDirectory).Any();
        if (containerId != sandboxId && othersLeft)
            return; // the sandbox still holds other containers: it goes with the last of them

        if (SandboxOwnerFile.LiveOwner(state.Path) is { } owner)
        {
            var wait = ownerExitWait ?? DefaultOwnerExitWait;
            if (!await OwnerExitsWithinAsync(state, wait, cancellationToken).ConfigureAwait(false))
            {
                // containerd runs `delete` when it has given up on the daemon (its connection dropped): nobody will
                // send that daemon Shutdown any more. containerd 2.x does so for a pod's pause container when its VM
                // has died, and kills this command after 5 s; without this the daemon and its state stay forever.
                log($"sandbox {sandboxId}: its shim daemon (pid {owner}) still runs {wait.TotalSeconds:0.#} s after containerd gave up on it; " +
                    "sending it SIGTERM (it stops its VM and exits)");
                PosixSignal.Send(owner, PosixSignal.SigTerm);
                if (!await OwnerExitsWithinAsync(state, wait, cancellationToken).ConfigureAwait(false))
                {
                    log($"sandbox {sandboxId}: its shim daemon (pid {owner}) still runs after SIGTERM; leaving the sandbox to it");
                    return;
                }
            }
        }
        if (!Directory.Exists(state.Path))
            return; // the daemon removed it on its way out

        log($"sandbox {sandboxId}: its shim daemon is gone; cleaning up {state.Path}");
        await SandboxStateRemoval.RemoveAsync(state, log, cancellationToken, new SandboxStateRemoval.PostMortemOf(
            new Sandbox.Runtime.PostMortem.PostMortemStore(state.Root),
            "its shim daemon died before it stopped the sandbox (killed, or crashed: see the shim's last lines); containerd's delete removed what it left")).ConfigureAwait(false);
    }

    private static async Task<bool> OwnerExitsWithinAsync(SandboxStateDirectory state, TimeSpan wait, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + wait;
        while (SandboxOwnerFile.LiveOwner(state.Path) is not null && DateTime.UtcNow < deadline)
            await Task.Delay(OwnerPollInterval, cancellationToken).ConfigureAwait(false);
        return SandboxOwnerFile.LiveOwner(state.Path) is null;
    }

    private static string SandboxIdOf(string bundle, string containerId)
    {
        try
        {
            return BundleConfig.GroupIdOf(File.ReadAllText(Path.Combine(bundle, "config.json")), containerId);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or FormatException)
        {
            return containerId;
        }
    }
}
