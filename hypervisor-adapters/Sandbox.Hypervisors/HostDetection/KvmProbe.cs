namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Result of <see cref="KvmProbe"/>: whether hardware acceleration can be used, and why (not).</summary>
/// <param name="Usable">/dev/kvm opens read-write and the CPU advertises vmx or svm.</param>
/// <param name="DeviceError">Why the device did not open, or null when it did.</param>
/// <param name="VirtualizationFlag">"vmx" or "svm" when /proc/cpuinfo lists it, else null.</param>
/// <param name="Reason">One sentence for `sandboxctl check` and for error messages.</param>
public sealed record KvmProbeResult(bool Usable, string? DeviceError, string? VirtualizationFlag, string Reason);

/// <summary>
/// Can this host run KVM guests? Like Kata's check: /dev/kvm must open read-write AND /proc/cpuinfo must advertise vmx
/// (Intel) or svm (AMD). A /dev/kvm without those flags (a nested guest whose hypervisor does not expose virtualisation)
/// opens fine but cannot run guests, so the flag matters.
/// </summary>
public sealed class KvmProbe
{
    private readonly string _devicePath;
    private readonly string _cpuinfoPath;

    public KvmProbe(string devicePath = "/dev/kvm", string cpuinfoPath = "/proc/cpuinfo")
    {
        _devicePath = devicePath;
        _cpuinfoPath = cpuinfoPath;
    }

    public KvmProbeResult Probe()
    {
        var deviceError = DeviceAccess.TryOpenReadWrite(_devicePath);
        string? flag;
        string? cpuinfoError = null;
        try
        {
            flag = FindVirtualizationFlag(File.ReadAllText(_cpuinfoPath));
        }
        catch (IOException e)
        {
            flag = null;
            cpuinfoError = $"cannot read {_cpuinfoPath}: {e.Message}";
        }
        return Evaluate(deviceError, flag, cpuinfoError, _cpuinfoPath);
    }

    /// <summary>The decision, separate from the I/O so that it can be tested.</summary>
    public static KvmProbeResult Evaluate(string? deviceError, string? virtualizationFlag, string? cpuinfoError, string cpuinfoPath)
    {
        var problems = new List<string>();
        if (deviceError is not null)
            problems.Add(deviceError + " (is the kvm_intel or kvm_amd module loaded, and are we root or in the kvm group?)");
        if (virtualizationFlag is null)
            problems.Add(cpuinfoError ?? $"no vmx/svm flag in {cpuinfoPath}: nested virtualisation is not exposed");
        return problems.Count == 0
            ? new KvmProbeResult(true, null, virtualizationFlag, $"/dev/kvm opens read-write and the CPU advertises {virtualizationFlag}")
            : new KvmProbeResult(false, deviceError, virtualizationFlag, string.Join("; ", problems));
    }

    /// <summary>"vmx" or "svm" if any "flags" line of /proc/cpuinfo text lists it, else null.</summary>
    public static string? FindVirtualizationFlag(string cpuinfo)
    {
        foreach (var line in cpuinfo.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon < 0 || line[..colon].Trim() != "flags")
                continue;
            foreach (var flag in line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (flag is "vmx" or "svm")
                    return flag;
            }
        }
        return null;
    }
}
