using Sandbox.Hypervisors.HostDetection;

namespace Sandbox.Hypervisors.Tests;

public class KvmProbeTests
{
    private const string IntelCpuinfo = """
        processor	: 0
        vendor_id	: GenuineIntel
        cpu MHz		: 2100.000
        flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx smx est tm2 ssse3
        
        processor	: 1
        flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx smx est tm2 ssse3
        """;

    private const string AmdCpuinfo = """
        processor	: 0
        vendor_id	: AuthenticAMD
        flags		: fpu vme de pse tsc msr pae mce cx8 apic sep svm extapic cr8_legacy
        """;

    // A nested guest without exposed virtualisation: "vmx" appears only inside other words and other fields.
    private const string NestedCpuinfo = """
        processor	: 0
        vendor_id	: AuthenticAMD
        model name	: AMD EPYC with vmx in its name
        flags		: fpu vme de pse tsc msr pae hypervisor lahf_lm cmp_legacy svm_lock nrip_save vmxnotreal
        bugs		: sysret_ss_attrs
        """;

    [Fact]
    public void Finds_vmx_on_intel() => Assert.Equal("vmx", KvmProbe.FindVirtualizationFlag(IntelCpuinfo));

    [Fact]
    public void Finds_svm_on_amd() => Assert.Equal("svm", KvmProbe.FindVirtualizationFlag(AmdCpuinfo));

    [Fact]
    public void Ignores_lookalike_flags_and_other_fields() => Assert.Null(KvmProbe.FindVirtualizationFlag(NestedCpuinfo));

    [Fact]
    public void Without_the_flag_the_reason_says_nested_virtualisation_is_not_exposed()
    {
        var result = KvmProbe.Evaluate(deviceError: null, virtualizationFlag: null, cpuinfoError: null, "/proc/cpuinfo");
        Assert.False(result.Usable);
        Assert.Equal("no vmx/svm flag in /proc/cpuinfo: nested virtualisation is not exposed", result.Reason);
    }

    [Fact]
    public void Usable_needs_device_and_flag()
    {
        var both = KvmProbe.Evaluate(null, "vmx", null, "/proc/cpuinfo");
        var noDevice = KvmProbe.Evaluate("/dev/kvm does not exist", "vmx", null, "/proc/cpuinfo");
        Assert.True(both.Usable);
        Assert.False(noDevice.Usable);
        Assert.Contains("/dev/kvm does not exist", noDevice.Reason);
    }

    [Fact]
    public void Probe_reads_the_device_and_cpuinfo_files()
    {
        using var dir = new TempDirectory();
        var device = dir.File("kvm", ""); // a regular file stands in for the device node: it opens read-write
        var withFlag = new KvmProbe(device, dir.File("cpuinfo-intel", IntelCpuinfo)).Probe();
        var withoutFlag = new KvmProbe(device, dir.File("cpuinfo-nested", NestedCpuinfo)).Probe();
        var missingDevice = new KvmProbe(Path.Combine(dir.Path, "no-kvm"), dir.File("cpuinfo-amd", AmdCpuinfo)).Probe();

        Assert.True(withFlag.Usable);
        Assert.Equal("vmx", withFlag.VirtualizationFlag);
        Assert.False(withoutFlag.Usable);
        Assert.Contains("nested virtualisation is not exposed", withoutFlag.Reason);
        Assert.False(missingDevice.Usable);
        Assert.Contains(Path.Combine(dir.Path, "no-kvm") + " does not exist", missingDevice.Reason);
    }

    [Fact]
    public void Unreadable_cpuinfo_is_reported()
    {
        using var dir = new TempDirectory();
        var result = new KvmProbe(dir.File("kvm", ""), Path.Combine(dir.Path, "missing-cpuinfo")).Probe();
        Assert.False(result.Usable);
        Assert.Contains("cannot read", result.Reason);
    }
}
