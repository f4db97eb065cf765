using Sandbox.Shim.Backend;
using Sandbox.Shim.Vm;
using Xunit;

namespace Sandbox.Shim.Tests;

public class ContainerResourcesTests
{
    [Fact]
    public void What_CRI_sends_is_read_and_only_cgroup_fields_are_passed_on()
    {
        // as containerd's CRI builds it: the container's whole LinuxResources with the new values
        const string json = """
            {"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":134217728,"swap":134217728},
             "cpu":{"shares":512,"quota":150000,"period":100000,"cpus":"0-1","mems":""},"unified":{}}
            """;
        var resources = ContainerResources.Parse(json, "c1");
        Assert.Equal(134217728, resources.MemoryLimit);
        Assert.Equal(512, resources.CpuShares);
        Assert.Equal(2, resources.CpuLimitCpus);
        Assert.Null(resources.Mems);
        Assert.Equal("""{"memory":{"limit":134217728,"swap":134217728},"cpu":{"shares":512,"quota":150000,"period":100000,"cpus":"0-1"}}""", resources.Json);
    }

    [Theory]
    [InlineData("""{"memory":{"limit":4096}}""", "memory.limit is 4096")]
    [InlineData("""{"memory":{"limit":134217728,"swap":1048576}}""", "memory.swap is 1048576")]
    [InlineData("""{"cpu":{"quota":-7}}""", "cpu.quota is -7")]
    [InlineData("""{"cpu":{"period":10}}""", "cpu.period is 10")]
    [InlineData("""{"cpu":{"shares":1}}""", "cpu.shares is 1")]
    [InlineData("""{"pids":{"limit":-2}}""", "pids.limit is -2")]
    [InlineData("""{"cpu":{"cpus":"0-a"}}""", "cpu.cpus \"0-a\"")]
    [InlineData("""{"memory":{"limit":"lots"}}""", "memory.limit is \"lots\", not a whole number")]
    [InlineData("""{"memory":{"limit":1e400}}""", "memory.limit is 1e400")]
    [InlineData("""{"memory":[1]}""", "\"memory\" is a JSON array")]
    [InlineData("""[1,2]""", "a JSON array, not an object")]
    [InlineData("""{"memory":""", "not valid JSON")]
    public void Bad_values_are_refused_naming_the_container_and_the_field(string json, string expected)
    {
        var error = Assert.Throws<FormatException>(() => ContainerResources.Parse(json, "c1"));
        Assert.StartsWith("update container c1: ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Minus_one_means_no_limit()
    {
        var resources = ContainerResources.Parse("""{"memory":{"limit":-1,"swap":-1},"cpu":{"quota":-1},"pids":{"limit":-1}}""", "c1");
        Assert.Equal(-1, resources.MemoryLimit);
        Assert.Null(resources.CpuLimitCpus);
        Assert.Equal(ContainerLimits.None, ContainerLimits.None.With(resources) with { CpuPeriod = 0 });
    }
}

public class PodResourceBudgetTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void A_container_limit_is_read_from_its_spec()
    {
        var limits = ContainerLimits.OfSpec("""{"linux":{"resources":{"memory":{"limit":268435456},"cpu":{"quota":50000,"period":100000}}}}""");
        Assert.Equal(new ContainerLimits(256 * MiB, 50000, 100000), limits);
        Assert.Equal(0.5, limits.Cpus);
        Assert.Equal(ContainerLimits.None, ContainerLimits.OfSpec("{not json"));
        Assert.Equal(ContainerLimits.None, ContainerLimits.OfSpec("""{"linux":{}}"""));
    }

    [Fact]
    public void Growing_within_the_VM_is_allowed_and_beyond_it_refused_naming_both_sizes()
    {
        var current = new ContainerLimits(128 * MiB, 0, 100000);
        ContainerLimits[] others = [new(256 * MiB, 0, 100000)];
        Assert.Null(PodResourceBudget.RefusalFor("c1", 2, 512, others, current, current with { MemoryBytes = 256 * MiB }));

        var refusal = PodResourceBudget.RefusalFor("c1", 2, 512, others, current, current with { MemoryBytes = 300 * MiB });
        Assert.NotNull(refusal);
        Assert.Contains("update container c1: memory limit 300 MiB", refusal);
        Assert.Contains("556 MiB in all, more than its VM's 512 MiB", refusal);

        var cpus = PodResourceBudget.RefusalFor("c1", 2, 512, others, current, current with { CpuQuota = 300000 });
        Assert.NotNull(cpus);
        Assert.Contains("more than its VM's 2 vCPU(s)", cpus);
        Assert.Null(PodResourceBudget.RefusalFor("c1", 2, 512, others, current, current with { CpuQuota = 200000 }));
    }

    [Fact]
    public void Shrinking_is_always_allowed_even_when_the_pod_is_already_over_its_VM()
    {
        var current = new ContainerLimits(1024 * MiB, 400000, 100000);
        Assert.Null(PodResourceBudget.RefusalFor("c1", 1, 256, [], current, new ContainerLimits(512 * MiB, 200000, 100000)));
    }
}
