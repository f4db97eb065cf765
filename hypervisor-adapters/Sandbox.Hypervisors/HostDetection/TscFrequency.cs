using System.Globalization;
using System.Text.RegularExpressions;

namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Where the TSC frequency came from.</summary>
public enum TscSource { None, Sysfs, KernelLog, CpuinfoMhz }

/// <summary>Result of <see cref="TscFrequency"/>.</summary>
/// <param name="KHz">Host TSC frequency in kHz, or null when no source gave one.</param>
/// <param name="Source">Which source was used.</param>
/// <param name="Detail">The source in words (file, log line), or why every source failed.</param>
public sealed record TscFrequencyResult(long? KHz, TscSource Source, string Detail);

/// <summary>
/// The host TSC rate in kHz, for the guest's `tsc_early_khz=`: under TCG the guest TSC ticks at the host rate, and a
/// microvm guest (no PIT/HPET to calibrate against) hangs in boot without it. Sources, in order:
/// /sys/devices/system/cpu/cpu0/tsc_freq_khz (exact, only some kernels), the kernel's own calibration in its log
/// ("tsc: Refined TSC clocksource calibration: X MHz", else "tsc: Detected X MHz"), and last /proc/cpuinfo "cpu MHz"
/// (the current core clock, equal to the TSC only without frequency scaling).
/// </summary>
public sealed partial class TscFrequency
{
    private readonly string _sysfsPath;
    private readonly string _cpuinfoPath;
    private readonly Func<(string? Text, string? Error)> _readKernelLog;

    public TscFrequency(
        string sysfsPath = "/sys/devices/system/cpu/cpu0/tsc_freq_khz",
        string cpuinfoPath = "/proc/cpuinfo",
        Func<(string? Text, string? Error)>? readKernelLog = null)
    {
        _sysfsPath = sysfsPath;
        _cpuinfoPath = cpuinfoPath;
        _readKernelLog = readKernelLog ?? (() => (KernelLog.TryReadAll(out var error), error));
    }

    public TscFrequencyResult Detect()
    {
        var failures = new List<string>();

        var sysfs = TryRead(_sysfsPath, out var sysfsError);
        if (sysfs is not null && ParseSysfs(sysfs) is { } sysfsKHz)
            return new TscFrequencyResult(sysfsKHz, TscSource.Sysfs, _sysfsPath);
        failures.Add(sysfs is null ? sysfsError! : $"{_sysfsPath} holds no number");

        var (log, logError) = _readKernelLog();
        if (log is not null && ParseKernelLog(log) is { } fromLog)
            return new TscFrequencyResult(fromLog.KHz, TscSource.KernelLog, $"kernel log: \"{fromLog.Line}\"");
        failures.Add(log is null ? $"kernel log unreadable ({logError})" : "kernel log has no \"tsc: Detected\" line (rotated out?)");

        var cpuinfo = TryRead(_cpuinfoPath, out var cpuinfoError);
        if (cpuinfo is not null && ParseCpuinfoMhz(cpuinfo) is { } cpuKHz)
            return new TscFrequencyResult(cpuKHz, TscSource.CpuinfoMhz,
                $"{_cpuinfoPath} \"cpu MHz\" (the current clock; wrong if the CPU scales its frequency)");
        failures.Add(cpuinfo is null ? cpuinfoError! : $"{_cpuinfoPath} has no \"cpu MHz\" line");

        return new TscFrequencyResult(null, TscSource.None, "TSC frequency unknown: " + string.Join("; ", failures));
    }

    public static long? ParseSysfs(string text) =>
        long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var kHz) && kHz > 0 ? kHz : null;

    /// <summary>The last "Refined TSC clocksource calibration" line if any (the more precise one), else the last
    /// "tsc: Detected X MHz" line; kHz rounded.</summary>
    public static (long KHz, string Line)? ParseKernelLog(string log)
    {
        (long, string)? refined = null;
        (long, string)? detected = null;
        foreach (Match match in KernelTscLine().Matches(log))
        {
            var kHz = MhzToKHz(match.Groups["mhz"].Value);
            if (kHz is null)
                continue;
            var value = (kHz.Value, match.Value.Trim());
            if (match.Groups["kind"].Value.StartsWith("Refined", StringComparison.Ordinal))
                refined = value;
            else
                detected = value;
        }
        return refined ?? detected;
    }

    /// <summary>"cpu MHz : 2596.140" of the first processor, in kHz.</summary>
    public static long? ParseCpuinfoMhz(string cpuinfo)
    {
        foreach (var line in cpuinfo.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon >= 0 && line[..colon].Trim() == "cpu MHz")
                return MhzToKHz(line[(colon + 1)..].Trim());
        }
        return null;
    }

    private static long? MhzToKHz(string mhz) =>
        decimal.TryParse(mhz, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) && value > 0
            ? (long)Math.Round(value * 1000m)
            : null;

    private static string? TryRead(string path, out string? error)
    {
        try
        {
            error = null;
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = e is FileNotFoundException ? $"{path} does not exist" : $"cannot read {path}: {e.Message}";
            return null;
        }
    }

    [GeneratedRegex(@"tsc: (?<kind>Refined TSC clocksource calibration|Detected):? (?<mhz>[0-9]+(\.[0-9]+)?) MHz[^\n]*")]
    private static partial Regex KernelTscLine();
}
