using System.Text;
using System.Text.Json.Nodes;
using Sandbox.Agent.Containers;

namespace Sandbox.Agent.Tests;

/// <summary>How CRI pod specs are rewritten for the guest: pod roles, namespace paths, net.* sysctls.</summary>
public class PodNamespaceTests
{
    private static string Spec(string containerType, string namespaces, string sysctl = "{}") =>
        "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"}," +
        "\"annotations\":{\"io.kubernetes.cri.container-type\":\"" + containerType + "\",\"io.kubernetes.cri.sandbox-id\":\"pod1\"}," +
        "\"linux\":{\"namespaces\":" + namespaces + ",\"sysctl\":" + sysctl + "}}";

    private static JsonArray Namespaces(RewrittenConfig config) => JsonNode.Parse(config.Json)!["linux"]!["namespaces"]!.AsArray();

    private static Dictionary<string, string?> ByType(JsonArray namespaces) =>
        namespaces.ToDictionary(n => (string)n!["type"]!, n => (string?)n!["path"]);

    [Fact]
    public void An_app_container_joins_the_sandbox_ipc_uts_and_pid_namespaces_by_guest_pid()
    {
        string spec = Spec("container", """
            [{"type":"pid","path":"/proc/4242/ns/pid"},{"type":"ipc","path":"/proc/4242/ns/ipc"},{"type":"uts","path":"/proc/4242/ns/uts"},
             {"type":"mount"},{"type":"network","path":"/proc/4242/ns/net"}]
            """);
        var namespaces = ByType(Namespaces(OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(spec), "/r", false, sandboxInitPid: 77)));
        Assert.Equal("/proc/77/ns/pid", namespaces["pid"]);
        Assert.Equal("/proc/77/ns/ipc", namespaces["ipc"]);
        Assert.Equal("/proc/77/ns/uts", namespaces["uts"]);
        Assert.Null(namespaces["mount"]);
        Assert.False(namespaces.ContainsKey("network")); // the VM is the pod's network namespace
    }

    [Fact]
    public void A_pid_entry_without_a_path_stays_a_new_pid_namespace()
    {
        string spec = Spec("container", """[{"type":"pid"},{"type":"ipc","path":"/proc/9/ns/ipc"},{"type":"uts","path":"/proc/9/ns/uts"},{"type":"mount"}]""");
        var namespaces = ByType(Namespaces(OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(spec), "/r", false, sandboxInitPid: 77)));
        Assert.Null(namespaces["pid"]);
        Assert.Equal("/proc/77/ns/ipc", namespaces["ipc"]);
        Assert.Equal("/proc/77/ns/uts", namespaces["uts"]);
    }

    [Fact]
    public void Other_namespace_paths_are_host_paths_and_are_dropped()
    {
        string spec = Spec("container", """[{"type":"mount","path":"/proc/9/ns/mnt"},{"type":"cgroup","path":"/proc/9/ns/cgroup"}]""");
        var namespaces = ByType(Namespaces(OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(spec), "/r", false, sandboxInitPid: 77)));
        Assert.Null(namespaces["mount"]);
        Assert.Null(namespaces["cgroup"]);
    }

    [Fact]
    public void Without_a_sandbox_pid_every_path_is_dropped_as_before()
    {
        string spec = Spec("sandbox", """[{"type":"pid","path":"/proc/1/ns/pid"},{"type":"ipc"},{"type":"uts"},{"type":"network","path":"/var/run/netns/cni-1"}]""");
        var namespaces = Namespaces(OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(spec), "/r", false));
        Assert.Equal(["pid", "ipc", "uts"], namespaces.Select(n => (string)n!["type"]!));
        Assert.All(namespaces, n => Assert.Null(n!["path"]));
    }

    [Fact]
    public void Net_sysctls_are_taken_out_for_the_VM_and_the_others_stay_for_crun()
    {
        string spec = Spec("sandbox", """[{"type":"ipc"}]""",
            """{"net.ipv4.ip_unprivileged_port_start":"0","kernel.shmmax":"4096","net.ipv4.conf.eth0/100.forwarding":"1"}""");
        RewrittenConfig config = OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(spec), "/r", false);
        Assert.Equal(
            [new("net.ipv4.ip_unprivileged_port_start", "0"), new("net.ipv4.conf.eth0/100.forwarding", "1")],
            config.NetworkSysctls);
        var left = JsonNode.Parse(config.Json)!["linux"]!["sysctl"]!.AsObject();
        Assert.Equal(["kernel.shmmax"], left.Select(p => p.Key));
    }

    [Fact]
    public void Malformed_sysctls_and_namespaces_name_the_field()
    {
        Assert.Contains("not a valid sysctl name", Assert.Throws<InvalidSpecException>(() =>
            OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(Spec("sandbox", "[]", """{"net.ipv4/../../x":"1"}""")), "/r", false)).Message);
        Assert.Contains("sysctl[\"net.a\"] must be a string", Assert.Throws<InvalidSpecException>(() =>
            OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(Spec("sandbox", "[]", """{"net.a":1}""")), "/r", false)).Message);
        Assert.Contains("linux.namespaces must be an array", Assert.Throws<InvalidSpecException>(() =>
            OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(Spec("sandbox", "{}")), "/r", false)).Message);
    }

    [Theory]
    [InlineData("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward")]
    [InlineData("net/ipv4/conf/eth0.100/forwarding", "/proc/sys/net/ipv4/conf/eth0.100/forwarding")]
    [InlineData("kernel.shm_rmid_forced", "/proc/sys/kernel/shm_rmid_forced")]
    public void Sysctl_names_map_to_proc_sys_paths(string name, string path)
    {
        Assert.True(GuestSysctls.TryGetPath(name, out string actual));
        Assert.Equal(path, actual);
    }

    [Theory]
    [InlineData("")]
    [InlineData("net..ipv4")]
    [InlineData("net/../../etc/passwd")]
    [InlineData("net.ipv4 x")]
    [InlineData("net.ipv4.*")]
    public void Dangerous_sysctl_names_are_refused(string name) => Assert.False(GuestSysctls.TryGetPath(name, out _));
}

public class PodMembershipTests
{
    private static PodMembership Of(string annotations) =>
        PodMembership.Of(JsonNode.Parse($$"""{"process":{"args":["sh"]},"annotations":{{annotations}}}""")!.AsObject());

    [Fact]
    public void Roles_come_from_the_CRI_annotations()
    {
        Assert.Equal(PodMembership.Standalone, PodMembership.Of(JsonNode.Parse("""{"process":{"args":["sh"]}}""")!.AsObject()));
        Assert.Equal(PodMembership.Standalone, Of("""{"other":"x"}"""));
        Assert.Equal(new PodMembership(PodRole.Sandbox, "p1"),
            Of("""{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"p1"}"""));
        Assert.Equal(new PodMembership(PodRole.Container, "p1"),
            Of("""{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"p1"}"""));
    }

    [Theory]
    [InlineData("""{"io.kubernetes.cri.container-type":"container"}""", "needs io.kubernetes.cri.sandbox-id")]
    [InlineData("""{"io.kubernetes.cri.container-type":"pause"}""", "neither 'sandbox' nor 'container'")]
    [InlineData("""{"io.kubernetes.cri.container-type":5}""", "must be a string")]
    public void Bad_annotations_are_invalid_specs(string annotations, string expected) =>
        Assert.Contains(expected, Assert.Throws<InvalidSpecException>(() => Of(annotations)).Message);
}
