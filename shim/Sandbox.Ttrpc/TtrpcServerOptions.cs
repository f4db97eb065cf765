namespace Sandbox.Ttrpc;

public sealed class TtrpcServerOptions
{
    /// <summary>Reject connections whose peer (SO_PEERCRED) runs under another uid than this process's euid.</summary>
    public bool RequireSameUser { get; init; } = true;

    /// <summary>Receives one line per notable event (rejected peer, protocol error, failed write).</summary>
    public Action<string>? Log { get; init; }
}
