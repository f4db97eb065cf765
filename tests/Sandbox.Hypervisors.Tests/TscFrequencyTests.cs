using Sandbox.Hypervisors.HostDetection;

namespace Sandbox.Hypervisors.Tests;

public class TscFrequencyTests
{
    private const string KernelLog = """
        <6>[    0.000000] Linux version 6.1.0-57-amd64
        <4>[    0.000000] [Firmware Bug]: TSC doesn't count with P0 frequency!
        <6>[    0.000057] tsc: Detected 2596.140 MHz processor
        <6>[    0.249793] clocksource: tsc-early: mask: 0xffffffffffffffff max_cycles: 0x256bfd9ef1e
        <6>[    1.412000] tsc: Refined TSC clocksource calibration: 2596.093 MHz
        """;

    [Fact]
    public void Kernel_log_prefers_the_refined_calibration()
    {
        var parsed = TscFrequency.ParseKernelLog(KernelLog);
        Assert.NotNull(parsed);
        Assert.Equal(2596093, parsed.Value.KHz);
        Assert.Equal("tsc: Refined TSC clocksource calibration: 2596.093 MHz", parsed.Value.Line);
    }

    [Fact]
    public void Kernel_log_with_only_detected()
    {
        var parsed = TscFrequency.ParseKernelLog("[    0.000057] tsc: Detected 2100.000 MHz TSC\n");
        Assert.Equal(2100000, parsed?.KHz);
    }

    [Fact]
    public void Kernel_log_without_tsc_lines() => Assert.Null(TscFrequency.ParseKernelLog("[ 0.1] clocksource: Switched to clocksource tsc\n"));

    [Fact]
    public void Cpuinfo_mhz_of_the_first_processor()
    {
        Assert.Equal(2596140, TscFrequency.ParseCpuinfoMhz("processor\t: 0\ncpu MHz\t\t: 2596.140\n\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n"));
        Assert.Null(TscFrequency.ParseCpuinfoMhz("processor\t: 0\n"));
    }

    [Fact]
    public void Sysfs_wins_over_everything()
    {
        using var dir = new TempDirectory();
        var detector = new TscFrequency(dir.File("tsc_freq_khz", "2100000\n"), dir.File("cpuinfo", "cpu MHz : 1000.0\n"), () => (KernelLog, null));
        var result = detector.Detect();
        Assert.Equal(2100000, result.KHz);
        Assert.Equal(TscSource.Sysfs, result.Source);
    }

    [Fact]
    public void Kernel_log_is_second()
    {
        using var dir = new TempDirectory();
        var detector = new TscFrequency(Path.Combine(dir.Path, "none"), dir.File("cpuinfo", "cpu MHz : 1000.0\n"), () => (KernelLog, null));
        var result = detector.Detect();
        Assert.Equal(2596093, result.KHz);
        Assert.Equal(TscSource.KernelLog, result.Source);
        Assert.Contains("Refined TSC clocksource calibration", result.Detail);
    }

    [Fact]
    public void Cpuinfo_is_last_and_says_it_is_the_current_clock()
    {
        using var dir = new TempDirectory();
        var detector = new TscFrequency(Path.Combine(dir.Path, "none"), dir.File("cpuinfo", "cpu MHz\t\t: 2596.140\n"),
            () => (null, "syslog(SIZE_BUFFER) failed: Operation not permitted"));
        var result = detector.Detect();
        Assert.Equal(2596140, result.KHz);
        Assert.Equal(TscSource.CpuinfoMhz, result.Source);
        Assert.Contains("cpu MHz", result.Detail);
    }

    [Fact]
    public void No_source_gives_null_and_every_reason()
    {
        using var dir = new TempDirectory();
        var detector = new TscFrequency(Path.Combine(dir.Path, "none"), dir.File("cpuinfo", "processor : 0\n"),
            () => (null, "syslog(SIZE_BUFFER) failed: Operation not permitted"));
        var result = detector.Detect();
        Assert.Null(result.KHz);
        Assert.Equal(TscSource.None, result.Source);
        Assert.Contains("does not exist", result.Detail);
        Assert.Contains("Operation not permitted", result.Detail);
        Assert.Contains("no \"cpu MHz\" line", result.Detail);
    }

    [Fact]
    public void This_host_has_a_tsc_frequency()
    {
        // Every Linux x86 host has at least the cpuinfo source; the value must be a plausible clock (100 MHz..10 GHz).
        var result = new TscFrequency().Detect();
        Assert.NotNull(result.KHz);
        Assert.InRange(result.KHz.Value, 100_000, 10_000_000);
    }
}
