using Sandbox.Hypervisors.HostDetection;

namespace Sandbox.Hypervisors.Tests;

public class VsockProbeTests
{
    [Fact]
    public void Auto_prefers_the_kernel_device()
    {
        var result = VsockProbe.Evaluate(VsockMode.Auto, kernelDeviceError: null, "/usr/bin/vhost-device-vsock", null);
        Assert.Equal(VsockMode.Kernel, result.Mode);
    }

    [Fact]
    public void Auto_falls_back_to_hybrid_and_says_why()
    {
        var result = VsockProbe.Evaluate(VsockMode.Auto, "/dev/vhost-vsock does not exist", "/usr/bin/vhost-device-vsock", null);
        Assert.Equal(VsockMode.Hybrid, result.Mode);
        Assert.Equal("/usr/bin/vhost-device-vsock", result.VhostDeviceVsockPath);
        Assert.Contains("/dev/vhost-vsock does not exist", result.Reason);
    }

    [Fact]
    public void Neither_is_unusable_with_both_reasons()
    {
        var result = VsockProbe.Evaluate(VsockMode.Auto, "/dev/vhost-vsock does not exist", null, "vhost-device-vsock is not on PATH");
        Assert.False(result.Usable);
        Assert.Contains("/dev/vhost-vsock does not exist", result.Reason);
        Assert.Contains("vhost-device-vsock is not on PATH", result.Reason);
    }

    [Fact]
    public void Kernel_requested_without_device_is_unusable_even_with_the_daemon()
    {
        var result = VsockProbe.Evaluate(VsockMode.Kernel, "/dev/vhost-vsock does not exist", "/usr/bin/vhost-device-vsock", null);
        Assert.False(result.Usable);
        Assert.Contains("vhost_vsock", result.Reason);
    }

    [Fact]
    public void Probe_finds_the_daemon_on_the_search_path()
    {
        using var dir = new TempDirectory();
        var daemon = dir.Executable("vhost-device-vsock", "#!/bin/sh\n");
        var result = new VsockProbe(Path.Combine(dir.Path, "no-device"), searchPath: "/nonexistent:" + dir.Path).Probe();
        Assert.Equal(VsockMode.Hybrid, result.Mode);
        Assert.Equal(daemon, result.VhostDeviceVsockPath);
    }

    [Fact]
    public void Probe_uses_the_device_when_it_opens()
    {
        using var dir = new TempDirectory();
        var result = new VsockProbe(dir.File("vhost-vsock", ""), searchPath: dir.Path).Probe();
        Assert.Equal(VsockMode.Kernel, result.Mode);
    }

    [Fact]
    public void Probe_rejects_a_configured_daemon_that_is_not_executable()
    {
        using var dir = new TempDirectory();
        var notExecutable = dir.File("vhost-device-vsock", "");
        var result = new VsockProbe(Path.Combine(dir.Path, "no-device"), daemonPath: notExecutable).Probe();
        Assert.False(result.Usable);
        Assert.Contains($"{notExecutable} is not an executable file", result.Reason);
    }
}
