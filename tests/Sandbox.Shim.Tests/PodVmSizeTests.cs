using Sandbox.Shim.Vm;

namespace Sandbox.Shim.Tests;

/// <summary>The pod VM's vCPUs and memory: the configured defaults plus the pod's limits from CRI's annotations.</summary>
public sealed class PodVmSizeTests
{
    private const int HostCpus = 8;
    private const long HostMemoryMiB = 16384;

    [Fact]
    public void Without_pod_resources_the_defaults()
    {
        var size = PodVmSize.From(new Dictionary<string, string>(), 1, 256, HostCpus, HostMemoryMiB);

        Assert.Equal((1, 256), (size.Vcpus, size.MemoryMiB));
        Assert.Contains("defaults", size.Reason);
    }

    [Fact]
    public void The_pod_limits_come_on_top_of_the_defaults_rounded_up()
    {
        var size = PodVmSize.From(Annotations(quota: "150000", period: "100000", memory: (128L * 1024 * 1024 + 1).ToString()),
            1, 256, HostCpus, HostMemoryMiB);

        Assert.Equal(1 + 2, size.Vcpus);       // ceil(1.5)
        Assert.Equal(256 + 129, size.MemoryMiB); // ceil(128 MiB + 1 byte)
    }

    [Fact]
    public void The_host_caps_the_size_but_never_below_the_defaults()
    {
        var capped = PodVmSize.From(Annotations(quota: "1600000", period: "100000", memory: (64L << 30).ToString()), 2, 512, HostCpus, HostMemoryMiB);
        Assert.Equal((HostCpus, (int)HostMemoryMiB), (capped.Vcpus, capped.MemoryMiB));

        var bigDefaults = PodVmSize.From(Annotations(quota: "100000", period: "100000", memory: "1048576"), 12, 32768, HostCpus, HostMemoryMiB);
        Assert.Equal((12, 32768), (bigDefaults.Vcpus, bigDefaults.MemoryMiB));
    }

    [Theory]
    [InlineData("-1", "100000", "0")]        // unlimited CPU, no memory limit
    [InlineData("0", "0", "-1")]
    [InlineData("50000", "0", "")]           // no period
    [InlineData("lots", "100000", "2Gi")]    // not numbers
    public void Unlimited_missing_or_garbled_values_add_nothing(string quota, string period, string memory)
    {
        var size = PodVmSize.From(Annotations(quota, period, memory), 1, 256, HostCpus, HostMemoryMiB);

        Assert.Equal((1, 256), (size.Vcpus, size.MemoryMiB));
    }

    [Fact]
    public void Annotations_are_read_from_the_sandbox_spec()
    {
        string spec = """
            {"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"sandbox",
             "io.kubernetes.cri.sandbox-cpu-quota":"200000","io.kubernetes.cri.sandbox-cpu-period":"100000",
             "io.kubernetes.cri.sandbox-memory":"268435456","not-a-string":5}}
            """;

        var annotations = PodVmSize.AnnotationsOf(spec);
        Assert.Equal("200000", annotations[PodVmSize.CpuQuotaAnnotation]);
        Assert.False(annotations.ContainsKey("not-a-string"));
        Assert.Empty(PodVmSize.AnnotationsOf("""{"ociVersion":"1.0.2"}"""));
        Assert.Empty(PodVmSize.AnnotationsOf("not json"));

        var size = PodVmSize.ForSpec(spec, 1, 256);
        Assert.Equal(Math.Min(3, Math.Max(1, Environment.ProcessorCount)), size.Vcpus);
        Assert.Equal((int)Math.Min(512, PodVmSize.HostMemoryMiB()), size.MemoryMiB);
    }

    [Fact]
    public void Host_memory_is_read_from_proc_meminfo()
    {
        long memory = PodVmSize.HostMemoryMiB();
        Assert.InRange(memory, 64, int.MaxValue - 1);
    }

    private static Dictionary<string, string> Annotations(string quota, string period, string memory) => new()
    {
        [PodVmSize.CpuQuotaAnnotation] = quota,
        [PodVmSize.CpuPeriodAnnotation] = period,
        [PodVmSize.MemoryAnnotation] = memory,
    };
}
