namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Result of <see cref="VsockProbe"/>.</summary>
/// <param name="Mode">Kernel or Hybrid when usable; null when neither works.</param>
/// <param name="KernelDeviceError">Why /dev/vhost-vsock is unusable, or null when it opens.</param>
/// <param name="VhostDeviceVsockPath">Where vhost-device-vsock was found, or null.</param>
/// <param name="Reason">One sentence for `sandboxctl check` and error messages.</param>
public sealed record VsockProbeResult(VsockMode? Mode, string? KernelDeviceError, string? VhostDeviceVsockPath, string Reason)
{
    public bool Usable => Mode is not null;
}

/// <summary>
/// Which host&lt;-&gt;guest vsock this host can offer: the kernel's vhost-vsock (/dev/vhost-vsock, AF_VSOCK on the host),
/// else "hybrid" vsock through the vhost-device-vsock daemon (a host Unix socket speaking CONNECT/OK).
/// </summary>
public sealed class VsockProbe
{
    public const string DaemonName = "vhost-device-vsock";
    private readonly string _devicePath;
    private readonly string? _daemonPath;
    private readonly string? _searchPath;

    /// <param name="devicePath">The vhost-vsock device node.</param>
    /// <param name="daemonPath">Explicit vhost-device-vsock path; null = look it up on <paramref name="searchPath"/>.</param>
    /// <param name="searchPath">PATH-style list of directories; null = $PATH.</param>
    public VsockProbe(string devicePath = "/dev/vhost-vsock", string? daemonPath = null, string? searchPath = null)
    {
        _devicePath = devicePath;
        _daemonPath = daemonPath;
        _searchPath = searchPath;
    }

    /// <summary>Probes for <paramref name="requested"/>: Auto prefers kernel vsock, then hybrid.</summary>
    public VsockProbeResult Probe(VsockMode requested = VsockMode.Auto)
    {
        var deviceError = requested == VsockMode.Hybrid ? "not probed (hybrid mode requested)" : DeviceAccess.TryOpenReadWrite(_devicePath);
        string? daemon = null;
        string? daemonError = null;
        if (requested != VsockMode.Kernel)
        {
            daemon = _daemonPath is null ? ExecutableSearch.Find(DaemonName, _searchPath) : (ExecutableSearch.IsExecutableFile(_daemonPath) ? _daemonPath : null);
            if (daemon is null)
                daemonError = _daemonPath is null
                    ? $"{DaemonName} is not on PATH (install it, see images/setup-host.sh)"
                    : $"{_daemonPath} is not an executable file";
        }
        return Evaluate(requested, deviceError, daemon, daemonError);
    }

    /// <summary>The decision, separate from the I/O so that it can be tested.</summary>
    public static VsockProbeResult Evaluate(VsockMode requested, string? kernelDeviceError, string? daemonPath, string? daemonError)
    {
        switch (requested)
        {
            case VsockMode.Kernel:
                return kernelDeviceError is null
                    ? new VsockProbeResult(VsockMode.Kernel, null, null, "kernel vhost-vsock: the device opens read-write")
                    : new VsockProbeResult(null, kernelDeviceError, null,
                        $"kernel vsock requested but {kernelDeviceError} (load the vhost_vsock module, or use hybrid mode)");
            case VsockMode.Hybrid:
                return daemonPath is not null
                    ? new VsockProbeResult(VsockMode.Hybrid, kernelDeviceError, daemonPath, $"hybrid vsock through {daemonPath}")
                    : new VsockProbeResult(null, kernelDeviceError, null, $"hybrid vsock requested but {daemonError}");
            default:
                if (kernelDeviceError is null)
                    return new VsockProbeResult(VsockMode.Kernel, null, daemonPath, "kernel vhost-vsock: the device opens read-write");
                if (daemonPath is not null)
                    return new VsockProbeResult(VsockMode.Hybrid, kernelDeviceError, daemonPath,
                        $"hybrid vsock through {daemonPath}, because {kernelDeviceError}");
                return new VsockProbeResult(null, kernelDeviceError, null,
                    $"no vsock: {kernelDeviceError}, and {daemonError}");
        }
    }
}
