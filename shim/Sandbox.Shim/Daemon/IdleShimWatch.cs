namespace Sandbox.Shim.Daemon;

/// <summary>
/// Ends a shim daemon that containerd has lost. containerd stops a shim with Shutdown after the last delete; when it is
/// restarted while a shim is starting (before it recorded the shim) or stops between a delete and the Shutdown, nobody
/// ever calls Shutdown and the daemon would serve nothing forever (issue 15's soak: a shim and its socket left after a
/// containerd restart 0.07 s into `ctr run`). A daemon that holds no container, no sandbox and no request in flight for
/// the whole <c>idle_exit</c> period ([runtime] in configuration.toml) returns from <see cref="WaitAsync"/>.
/// </summary>
public sealed class IdleShimWatch(Func<bool> isIdle, TimeSpan period, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Completes once the daemon has been idle for the whole period; never when the period is zero.</summary>
    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        if (period <= TimeSpan.Zero)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            return;
        }
        var poll = TimeSpan.FromMilliseconds(Math.Clamp(period.TotalMilliseconds / 10, 50, 1000));
        long? idleSince = null;
        while (true)
        {
            if (!isIdle())
                idleSince = null;
            else if (idleSince is null)
                idleSince = _time.GetTimestamp();
            else if (_time.GetElapsedTime(idleSince.Value) >= period)
                return;
            await Task.Delay(poll, _time, cancellationToken).ConfigureAwait(false);
        }
    }
}
