namespace Sandbox.Shim.Cli;

/// <summary>What the shim was invoked with (containerd's flags and the action).</summary>
public sealed record ShimFlags
{
    public string Namespace { get; init; } = "";

    /// <summary>containerd's gRPC address (-address).</summary>
    public string Address { get; init; } = "";

    public string PublishBinary { get; init; } = "";

    public string Id { get; init; } = "";

    /// <summary>-bundle; containerd passes it to `delete` only (cwd is the bundle for every invocation).</summary>
    public string Bundle { get; init; } = "";

    /// <summary>-socket: the daemon listens on this path (when no listening socket was handed over as fd 3).</summary>
    public string Socket { get; init; } = "";

    public bool Debug { get; init; }

    /// <summary>-v: print the version and exit.</summary>
    public bool Version { get; init; }

    /// <summary>"start", "delete", or "" for the daemon.</summary>
    public string Action { get; init; } = "";
}
