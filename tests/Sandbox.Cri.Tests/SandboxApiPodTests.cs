using Sandbox.Cri.Tests.Fixture;
using Sandbox.Hypervisors.Processes;
using Sandbox.Shim.Tests.Containerd;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests;

/// <summary>
/// The pod tests with the `sandbox-api` handler: containerd 2.x's CRI starts each pod through the shim's Sandbox API
/// (containerd.runtime.sandbox.v1, `sandboxer = "shim"`), so the VM boots with no pause container. Category SandboxApi:
/// tests/run-tests.sh runs it on containerd 2.x only (1.6 and 1.7 have no Sandbox API).
/// </summary>
[Trait("Category", "EndToEnd")]
[Trait("Category", "SandboxApi")]
public sealed class SandboxApiPodTests(SandboxApiCriFixture fixture, ITestOutputHelper output)
    : VmCriPodTests<SandboxApiCriFixture>(fixture, output), IClassFixture<SandboxApiCriFixture>
{
    [Fact]
    public async Task The_pod_is_a_vm_without_a_pause_container()
    {
        var pod = await Fixture.SharedPodAsync();

        // containerd knows the pod's containers, and no container or task named after the pod
        var containers = await Fixture.Containerd.CtrAsync(["-n", "k8s.io", "containers", "ls", "-q"]);
        var tasks = await Fixture.Containerd.CtrAsync(["-n", "k8s.io", "tasks", "ls"]);
        Assert.True(containers.ExitCode == 0 && tasks.ExitCode == 0, $"{containers}\n{tasks}");
        Assert.Contains(pod.ContainerId("server"), containers.Stdout);
        Assert.DoesNotContain(pod.Id, containers.Stdout);
        Assert.DoesNotContain(pod.Id, tasks.Stdout);

        // the pod's VM runs from its state directory, and the containers share it (one guest kernel, one boot)
        var vm = LeftoverVmProcesses.Find(Path.Combine(Fixture.StateRoot, pod.Id));
        Assert.Contains(vm, p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
        var server = await Fixture.ExecAsync(pod, "server", "cat", "/proc/sys/kernel/random/boot_id");
        var client = await Fixture.ExecAsync(pod, "client", "cat", "/proc/sys/kernel/random/boot_id");
        Assert.Equal(server.Stdout, client.Stdout);
        Assert.NotEqual((await File.ReadAllTextAsync("/proc/sys/kernel/random/boot_id")).Trim(), server.Stdout.Trim());
    }
}
