namespace Sandbox.Ttrpc;

public sealed class TtrpcServerOptions
{
    /// <summary>Reject connections whose peer (SO_PEERCRED) runs under another uid than this process's euid.</summary>
    public bool RequireSameUser { get; init; } = true;

    /// <summary>
    /// How long a graceful <see cref="TtrpcServer.ShutdownAsync"/> waits, once every answer is written, for the clients
    /// to hang up before it closes their connections itself. Go's ttrpc client, when the connection closes while an
    /// answer waits in its queue, may return "ttrpc: closed" instead of the answer (its call picks at random between
    /// the two); containerd 2.1 fails RemovePodSandbox on that after ShutdownSandbox. containerd closes its connection
    /// right after the answer, so the wait is normally milliseconds.
    /// </summary>
    public TimeSpan HangUpWait { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Receives one line per notable event (rejected peer, protocol error, failed write).</summary>
    public Action<string>? Log { get; init; }
}
