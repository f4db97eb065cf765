namespace Sandbox.Runtime.Sandboxes;

/// <summary>Whether a sandbox's state directory belongs to a running owner.</summary>
public enum SandboxLiveness
{
    /// <summary>Its owner (the shim daemon that booted it) runs.</summary>
    Live,

    /// <summary>No owner recorded yet, and the directory is younger than <see cref="SandboxOwnership.StartGrace"/>:
    /// a boot that has just begun. Left alone.</summary>
    Starting,

    /// <summary>Its owner is gone (or was never recorded and the directory is old): what is left are leftovers.</summary>
    Dead,
}

/// <summary>Tells a live sandbox from a dead one's leftovers, from its state directory and /proc alone. `sandboxctl
/// list` and `gc` both use it, so that they always agree.</summary>
public static class SandboxOwnership
{
    /// <summary>How long a state directory without an owner record counts as starting. The owner record is written
    /// right after the directory is created (<see cref="SandboxVm.BootAsync"/>), so only a crash in between, or a
    /// directory made by something else, stays without one.</summary>
    public static readonly TimeSpan StartGrace = TimeSpan.FromSeconds(60);

    public static SandboxLiveness Of(SandboxStateDirectory state, DateTime utcNow)
    {
        if (SandboxOwnerFile.Recorded(state.Path) is { } owner)
            return owner.IsAlive ? SandboxLiveness.Live : SandboxLiveness.Dead;
        DateTime modified;
        try
        {
            modified = Directory.GetLastWriteTimeUtc(state.Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return SandboxLiveness.Dead;
        }
        return utcNow - modified < StartGrace ? SandboxLiveness.Starting : SandboxLiveness.Dead;
    }

    public static string Describe(SandboxLiveness liveness) => liveness switch
    {
        SandboxLiveness.Live => "live",
        SandboxLiveness.Starting => "starting",
        _ => "dead",
    };
}
