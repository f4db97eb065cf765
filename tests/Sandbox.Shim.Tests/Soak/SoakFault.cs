namespace Sandbox.Shim.Tests.Soak;

/// <summary>What a soak cycle does to a running pod (issue 15).</summary>
public enum SoakFault
{
    /// <summary>kill -9 of the pod's containerd-shim-sandbox-v2 daemon.</summary>
    KillShim,

    /// <summary>kill -9 of the pod's QEMU.</summary>
    KillQemu,

    /// <summary>kill -9 of the pod's vhost-device-vsock (the hybrid vsock daemon; absent on a vhost-vsock host).</summary>
    KillVsockDaemon,

    /// <summary>containerd stopped (SIGTERM) and started again while the pod runs.</summary>
    RestartContainerd,

    /// <summary>A guest kernel panic (sysrq "c" from a privileged container).</summary>
    GuestPanic,

    /// <summary>A guest that stops answering: its vCPUs stopped by QMP `stop`.</summary>
    GuestFrozen,
}

/// <summary>When in a container's life a cycle's fault strikes.</summary>
public enum SoakMoment
{
    /// <summary>During `ctr run -d`: the task's create (VM boot, agent) and start.</summary>
    Run,

    /// <summary>During a `ctr task exec` of a short command.</summary>
    Exec,

    /// <summary>During a `ctr task exec` that writes about 2 MB to stdout.</summary>
    Streaming,

    /// <summary>During `ctr task kill` and `ctr task rm`.</summary>
    Delete,
}
