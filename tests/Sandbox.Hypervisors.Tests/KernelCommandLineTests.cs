using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests;

public class KernelCommandLineTests
{
    [Fact]
    public void Tcg_gets_the_host_tsc_and_trusts_it()
    {
        Assert.Equal(
            "console=ttyS0 quiet rodata=off cryptomgr.notests panic=-1 reboot=k tsc_early_khz=2596140 no_timer_check tsc=reliable",
            KernelCommandLine.Build(Acceleration.Tcg, 2596140, debug: false, extra: null));
    }

    [Fact]
    public void Kvm_has_no_tsc_parameters()
    {
        Assert.Equal("console=ttyS0 quiet rodata=off cryptomgr.notests panic=-1 reboot=k",
            KernelCommandLine.Build(Acceleration.Kvm, 2596140, debug: false, extra: ""));
    }

    [Fact]
    public void Debug_drops_quiet_and_extra_parameters_come_last()
    {
        var line = KernelCommandLine.Build(Acceleration.Kvm, null, debug: true, extra: "  rdinit=/sbin/floor-init gmode=agent ");
        Assert.DoesNotContain("quiet", line);
        Assert.EndsWith(" reboot=k rdinit=/sbin/floor-init gmode=agent", line);
    }

    [Fact]
    public void Tcg_without_a_known_tsc_still_trusts_the_tsc()
    {
        var line = KernelCommandLine.Build(Acceleration.Tcg, null, debug: false, extra: null);
        Assert.DoesNotContain("tsc_early_khz", line);
        Assert.Contains("no_timer_check tsc=reliable", line);
    }
}
