using Sandbox.Cri.Tests.Api;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Cri.Tests.Load;
using Sandbox.Hypervisors.Processes;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests;

/// <summary>
/// The pod tests with the `sandbox` handler (containerd-shim-sandbox-v2, one QEMU VM per pod), plus what only a VM
/// runtime guarantees: one VM per pod, sized by the pod's limits. Left out with -p:SandboxHandlerPodTests=false
/// (see Sandbox.Cri.Tests.csproj).
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class SandboxHandlerPodTests(SandboxCriFixture fixture, ITestOutputHelper output)
    : VmCriPodTests<SandboxCriFixture>(fixture, output), IClassFixture<SandboxCriFixture>
{
    /// <summary>
    /// hostNetwork: runc shares the host's network namespace (RuncHandlerPodTests); a VM sandbox cannot, and refuses the
    /// pod with an error that says why and what to do, as Kata does. Not in SandboxApiPodTests: containerd 2.1 with
    /// sandboxer = "shim" crashes on a hostNetwork pod before it asks the shim (containerd#12983, fixed after 2.1);
    /// SandboxApiServiceTests checks the shim's refusal there.
    /// </summary>
    [Fact]
    public async Task A_host_network_pod_is_refused_with_an_error_that_says_why()
    {
        var refused = await Assert.ThrowsAsync<CriCallException>(() => Fixture.RunPodAsync("host-network", null, privileged: false, NamespaceMode.Node));
        Assert.Contains("hostNetwork", refused.Message);
        Assert.Contains("VM sandbox cannot", refused.Message);
    }

    /// <summary>A node that mixes runtimes: one ListContainerStats answers for runc's containers and the VM's alike.</summary>
    [Fact]
    public async Task ListContainerStats_covers_runc_and_vm_pods_on_one_node()
    {
        var vmPod = await Fixture.SharedPodAsync();
        var runcPod = await Fixture.RunPodAsync("runc-neighbour", null, privileged: false, NamespaceMode.Pod, CriFixture.RuncHandler);
        try
        {
            await Fixture.StartContainerAsync(runcPod, "main", ["sleep", "2147483647"]);
            var all = (await Fixture.CallAsync("ListContainerStats", () => Runtime.ListContainerStatsAsync(new ListContainerStatsRequest()).ResponseAsync)).Stats;
            foreach (var (pod, container) in new[] { (vmPod, "client"), (runcPod, "main") })
            {
                var stats = Assert.Single(all, s => s.Attributes.Id == pod.ContainerId(container));
                Output.WriteLine($"{pod}/{container}: cpu {stats.Cpu.UsageCoreNanoSeconds?.Value} ns, working set {stats.Memory.WorkingSetBytes?.Value} bytes");
                Assert.True(stats.Cpu.UsageCoreNanoSeconds?.Value > 0, $"{pod}/{container}: {stats.Cpu}");
                Assert.True(stats.Memory.WorkingSetBytes?.Value > 0, $"{pod}/{container}: {stats.Memory}");
            }
        }
        finally
        {
            await Fixture.StopAndRemovePodAsync(runcPod);
        }
    }

    /// <summary>Issue 15's load: 20 pods asked for at once on this 2-core machine (SANDBOX_LOAD_PODS to change it) all
    /// reach READY with their container running, each in its own VM, and are all removed without a trace.
    /// Category Load: tests/run-tests.sh runs it on one containerd release, the newest of the matrix (2.4 min under TCG).</summary>
    [Fact]
    [Trait("Category", "Load")]
    public async Task Twenty_pods_started_at_once_all_run_and_are_all_removed()
    {
        int count = int.TryParse(Environment.GetEnvironmentVariable("SANDBOX_LOAD_PODS"), out var n) ? n : 20;
        var outcome = await new BulkPodStart(Fixture, Output.WriteLine).RunAsync(count);
        foreach (var line in outcome.Figures(""))
            Output.WriteLine(line);
        Assert.True(outcome.Failures.Count == 0, $"{outcome.Failures.Count} of {count} pods failed:\n  {string.Join("\n  ", outcome.Failures)}");
        Assert.True(outcome.Leftovers.Count == 0, $"left behind:\n  {string.Join("\n  ", outcome.Leftovers)}");
        Assert.Equal(count, outcome.PodStarts.Count);
    }

    /// <summary>Issue 14's load: the same 20 pods at once, clones and cold boots mixed. Every other pod goes through the
    /// handler with [hypervisor.qemu] template = true and no template yet: the first of them builds it while the others
    /// wait on its lock, then they start as clones (a pod whose clone fails boots cold); the rest go through a handler
    /// of the same runtime without templates and boot cold beside them. All reach READY, each in its own VM, and all
    /// are removed without a trace.</summary>
    [Fact]
    [Trait("Category", "Load")]
    public async Task Twenty_pods_started_at_once_clones_and_cold_boots_mixed_all_run_and_are_all_removed()
    {
        int count = int.TryParse(Environment.GetEnvironmentVariable("SANDBOX_LOAD_PODS"), out var n) ? n : 20;
        string templates = Path.Combine(Path.GetDirectoryName(Fixture.StateRoot)!, "templates");
        if (Directory.Exists(templates))
            Directory.Delete(templates, recursive: true);
        BulkPodStart.Outcome outcome;
        await using (await Fixture.UseTemplatesAsync())
            outcome = await new BulkPodStart(Fixture, Output.WriteLine).RunAsync(count,
                i => i % 2 == 0 ? CriFixture.SandboxHandler : CriFixture.SandboxColdHandler);
        foreach (var line in outcome.Figures("_template"))
            Output.WriteLine(line);
        Output.WriteLine($"started: {string.Join(", ", outcome.Starts.GroupBy(s => s).Select(g => $"{g.Count()} {g.Key}"))}");
        Assert.True(outcome.Failures.Count == 0, $"{outcome.Failures.Count} of {count} pods failed:\n  {string.Join("\n  ", outcome.Failures)}");
        Assert.True(outcome.Leftovers.Count == 0, $"left behind:\n  {string.Join("\n  ", outcome.Leftovers)}");
        Assert.Equal(count, outcome.PodStarts.Count);
        Assert.Contains("cloned", outcome.Starts);
        Assert.True(outcome.Starts.Count(s => s == "booted") >= count / 2,
            $"the {count / 2} pods of the {CriFixture.SandboxColdHandler} handler must boot cold: {string.Join(", ", outcome.Starts)}");
    }

    [Fact]
    public async Task Each_pod_is_a_vm_of_its_own_shared_by_its_containers()
    {
        var pod = await Fixture.SharedPodAsync();
        var neighbour = await Fixture.NeighbourPodAsync();

        var server = await Fixture.ExecAsync(pod, "server", "cat", "/proc/sys/kernel/random/boot_id");
        var client = await Fixture.ExecAsync(pod, "client", "cat", "/proc/sys/kernel/random/boot_id");
        var other = await Fixture.ExecAsync(neighbour, "keeper", "cat", "/proc/sys/kernel/random/boot_id");
        Assert.True(server.ExitCode == 0 && client.ExitCode == 0 && other.ExitCode == 0, $"{server}\n{client}\n{other}");
        string host = (await File.ReadAllTextAsync("/proc/sys/kernel/random/boot_id")).Trim();

        Assert.Equal(server.Stdout, client.Stdout);              // one VM for the pod's containers
        Assert.NotEqual(server.Stdout.Trim(), other.Stdout.Trim()); // another VM for the other pod
        Assert.NotEqual(host, server.Stdout.Trim());
        Assert.NotEqual(host, other.Stdout.Trim());

        // and on the host: the VMs' processes (QEMU, vhost-device-vsock) in each pod's state directory
        var vm = LeftoverVmProcesses.Find(Path.Combine(Fixture.StateRoot, pod.Id));
        var otherVm = LeftoverVmProcesses.Find(Path.Combine(Fixture.StateRoot, neighbour.Id));
        Assert.Contains(vm, p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
        Assert.Contains(otherVm, p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
        Assert.Empty(vm.Select(p => p.Pid).Intersect(otherVm.Select(p => p.Pid)));
    }

    /// <summary>The VM does not grow: a resize past its size is refused, naming both sizes, and the container keeps
    /// the limit it had.</summary>
    [Fact]
    public async Task An_update_beyond_the_vms_size_is_refused_and_the_container_keeps_its_limit()
    {
        var pod = await Fixture.RunPodAsync("resize-beyond");
        try
        {
            await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"],
                resources: new LinuxContainerResources { MemoryLimitInBytes = 64L << 20 });
            var refused = await Assert.ThrowsAsync<CriCallException>(() =>
                UpdateResourcesAsync(pod, "main", new LinuxContainerResources { MemoryLimitInBytes = 8L << 30 }));
            Output.WriteLine(refused.Message);
            Assert.Contains("memory limit 8192 MiB", refused.Message);
            Assert.Contains("more than its VM's 256 MiB", refused.Message);
            Assert.Equal((64L << 20).ToString(), await CgroupMemoryLimitAsync(pod, "main"));

            // and the pod still serves
            await UpdateResourcesAsync(pod, "main", new LinuxContainerResources { MemoryLimitInBytes = 100L << 20 });
            Assert.Equal((100L << 20).ToString(), await CgroupMemoryLimitAsync(pod, "main"));
        }
        finally
        {
            await Fixture.StopAndRemovePodAsync(pod);
        }
    }

    [Fact]
    public async Task The_pods_cpu_and_memory_limits_are_added_to_the_vms_default_size()
    {
        // the fixture's configuration keeps the defaults: 1 vCPU, 256 MiB; this pod asks for 1 CPU and 128 MiB more
        var pod = await Fixture.RunPodAsync("sized", new LinuxContainerResources
        {
            CpuPeriod = 100_000, CpuQuota = 100_000, CpuShares = 1024, MemoryLimitInBytes = 128L << 20,
        });
        try
        {
            await Fixture.StartContainerAsync(pod, "main", new[] { "sleep", "2147483647" });
            var (vcpus, memoryKiB) = await GuestSizeAsync(pod, "main");
            var (sharedVcpus, sharedMemoryKiB) = await GuestSizeAsync(await Fixture.SharedPodAsync(), "client");
            Output.WriteLine($"sized pod: {vcpus} vCPU(s), MemTotal {memoryKiB} KiB; shared pod (no limits): {sharedVcpus} vCPU(s), MemTotal {sharedMemoryKiB} KiB");

            Assert.Equal(Math.Min(2, Environment.ProcessorCount), vcpus); // capped by the host's CPUs
            Assert.Equal(1, sharedVcpus);
            Assert.InRange(memoryKiB, 256 * 1024 + 1, 384 * 1024);        // MemTotal: the VM's memory less what the kernel keeps
            Assert.InRange(sharedMemoryKiB, 128 * 1024, 256 * 1024);
        }
        finally
        {
            await Fixture.StopAndRemovePodAsync(pod);
        }
        var leftovers = await PodLeftovers.WaitUntilGoneAsync(Fixture, pod);
        Assert.True(leftovers.Count == 0, $"{pod} left behind:\n  {string.Join("\n  ", leftovers)}");
    }

    /// <summary>The guest's CPU count and MemTotal (KiB), seen from a container of the pod.</summary>
    private async Task<(int Vcpus, long MemoryKiB)> GuestSizeAsync(TestPod pod, string container)
    {
        var cpus = await Fixture.ExecAsync(pod, container, "grep", "-c", "^processor", "/proc/cpuinfo");
        var memory = await Fixture.ExecAsync(pod, container, "grep", "^MemTotal:", "/proc/meminfo");
        Assert.True(cpus.ExitCode == 0 && memory.ExitCode == 0, $"{cpus}\n{memory}");
        // "MemTotal:         351040 kB"
        return (int.Parse(cpus.Stdout.Trim()), long.Parse(memory.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]));
    }
}
