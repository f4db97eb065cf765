using Cri.Runtime.V1;
using Sandbox.Shim.Vm;

namespace Sandbox.Shim.Tests;

public class HostNamespaceRefusalTests
{
    [Fact]
    public void A_spec_with_every_namespace_asks_for_no_host_namespace()
    {
        const string spec = """{"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network","path":"/var/run/netns/cni-1"}]}}""";
        Assert.Empty(HostNamespaceRefusal.RequestedBy(spec));
        Assert.Null(HostNamespaceRefusal.MessageFor("pod1", HostNamespaceRefusal.RequestedBy(spec)));
    }

    [Fact]
    public void A_spec_without_network_pid_or_ipc_entries_asks_for_those_host_namespaces()
    {
        const string spec = """{"linux":{"namespaces":[{"type":"uts"},{"type":"mount"}]}}""";
        Assert.Equal(["network", "pid", "ipc"], HostNamespaceRefusal.RequestedBy(spec));
        string message = HostNamespaceRefusal.MessageFor("pod1", HostNamespaceRefusal.RequestedBy(spec))!;
        Assert.Contains("sandbox pod1", message);
        Assert.Contains("hostNetwork, hostPID, hostIPC", message);
        Assert.Contains("runc", message);
    }

    [Fact]
    public void A_spec_without_linux_namespaces_asks_for_nothing_and_garbage_is_a_format_error_naming_config_json()
    {
        Assert.Empty(HostNamespaceRefusal.RequestedBy("""{"process":{"args":["sh"]}}"""));
        var garbage = Assert.Throws<FormatException>(() => HostNamespaceRefusal.RequestedBy("{not json"));
        Assert.Contains("config.json is not valid JSON", garbage.Message);
    }

    [Fact]
    public void A_pod_config_with_node_modes_asks_for_those_host_namespaces()
    {
        var config = new PodSandboxConfig
        {
            Linux = new LinuxPodSandboxConfig
            {
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node, Pid = NamespaceMode.Container, Ipc = NamespaceMode.Node },
                },
            },
        };
        Assert.Equal(["network", "ipc"], HostNamespaceRefusal.RequestedBy(config));
        Assert.Empty(HostNamespaceRefusal.RequestedBy(new PodSandboxConfig()));
    }
}
