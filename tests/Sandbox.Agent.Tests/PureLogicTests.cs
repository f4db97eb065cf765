using System.Buffers;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Grpc.Core;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Grpc;
using Sandbox.Vsock;

namespace Sandbox.Agent.Tests;

public class GrpcFrameTests
{
    [Fact]
    public void A_written_frame_parses_back_and_leaves_the_rest()
    {
        var writer = new ArrayBufferWriter<byte>();
        GrpcFrame.Write(writer, [1, 2, 3]);
        GrpcFrame.Write(writer, []);
        Assert.Equal(new byte[] { 0, 0, 0, 0, 3, 1, 2, 3 }, writer.WrittenSpan[..8].ToArray());

        var buffer = new ReadOnlySequence<byte>(writer.WrittenMemory);
        Assert.Equal(GrpcFrame.ParseResult.Complete, GrpcFrame.TryParse(ref buffer, 100, out byte[] first));
        Assert.Equal(new byte[] { 1, 2, 3 }, first);
        Assert.Equal(GrpcFrame.ParseResult.Complete, GrpcFrame.TryParse(ref buffer, 100, out byte[] second));
        Assert.Empty(second);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void A_partial_frame_is_incomplete_and_consumes_nothing()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 0, 4, 9, 9 });
        Assert.Equal(GrpcFrame.ParseResult.Incomplete, GrpcFrame.TryParse(ref buffer, 100, out _));
        Assert.Equal(7, buffer.Length);
        var header = new ReadOnlySequence<byte>(new byte[] { 0, 0 });
        Assert.Equal(GrpcFrame.ParseResult.Incomplete, GrpcFrame.TryParse(ref header, 100, out _));
    }

    [Fact]
    public void Compressed_and_oversized_messages_are_rejected()
    {
        var compressed = new ReadOnlySequence<byte>(new byte[] { 1, 0, 0, 0, 0 });
        Assert.Contains("compressed", Assert.Throws<GrpcFrameException>(() => GrpcFrame.TryParse(ref compressed, 100, out _)).Message);
        var big = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 1, 0 });
        Assert.Contains("256", Assert.Throws<GrpcFrameException>(() => GrpcFrame.TryParse(ref big, 100, out _)).Message);
    }

    [Theory]
    [InlineData("5S", 5_000)]
    [InlineData("250m", 250)]
    [InlineData("2M", 120_000)]
    [InlineData("1H", 3_600_000)]
    [InlineData("3000000u", 3_000)]
    [InlineData("7000000n", 7)]
    public void Grpc_timeouts_parse(string header, int milliseconds)
    {
        Assert.True(GrpcTimeout.TryParse(header, out TimeSpan timeout));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), timeout);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("S")]
    [InlineData("5s")]
    [InlineData("123456789S")]
    [InlineData("-5S")]
    public void Invalid_grpc_timeouts_are_refused(string? header) => Assert.False(GrpcTimeout.TryParse(header, out _));

    [Fact]
    public void Status_messages_are_percent_encoded()
    {
        Assert.Equal("plain text", GrpcStatusMessage.Encode("plain text"));
        Assert.Equal("100%25 done%0Anext", GrpcStatusMessage.Encode("100% done\nnext"));
        Assert.Equal("caf%C3%A9", GrpcStatusMessage.Encode("café"));
    }

    [Fact]
    public void The_method_table_holds_every_rpc_of_the_protocol()
    {
        var table = new GrpcMethodTable();
        Protocol.Agent.BindService(table, new AgentService(AgentRuntime.FromEnvironment()));
        Assert.True(table.TryGet("/sandbox.agent.v1.Agent/Health", out var health));
        Assert.IsType<UnaryMethodHandler<Protocol.HealthRequest, Protocol.HealthResponse>>(health);
        Assert.IsType<ServerStreamingMethodHandler<Protocol.ReadOutputRequest, Protocol.OutputChunk>>(
            table.TryGet("/sandbox.agent.v1.Agent/ReadStdout", out var read) ? read : null);
        Assert.IsType<ClientStreamingMethodHandler<Protocol.StdinChunk, Protocol.WriteStdinResponse>>(
            table.TryGet("/sandbox.agent.v1.Agent/WriteStdin", out var write) ? write : null);
        Assert.Equal(Protocol.Agent.Descriptor.Methods.Count, table.Paths.Count());
        Assert.False(table.TryGet("/sandbox.agent.v1.Agent/Nope", out _));
    }
}

public class ExitStatusTests
{
    [Theory]
    [InlineData(0x0000, 0)]     // exit(0)
    [InlineData(0x0300, 3)]     // exit(3)
    [InlineData(0xff00, 255)]   // exit(255)
    [InlineData(0x0009, 137)]   // SIGKILL
    [InlineData(0x000f, 143)]   // SIGTERM
    [InlineData(0x0086, 134)]   // SIGABRT with core dump flag (0x80)
    public void Wait_status_maps_to_exit_code_or_128_plus_signal(int raw, int expected) =>
        Assert.Equal(expected, Sandbox.Native.WaitStatus.ExitStatus(raw));
}

public class OciSpecRewriterTests
{
    private const string Spec = """
        {"ociVersion":"1.0.2","process":{"terminal":true,"args":["sh"],"cwd":"/"},"root":{"path":"/host/rootfs","readonly":true},
         "hooks":{"prestart":[{"path":"/usr/bin/host-hook"}]},
         "linux":{"namespaces":[{"type":"pid","path":"/proc/42/ns/pid"},{"type":"network","path":"/var/run/netns/cni-1"},{"type":"mount"}]}}
        """;

    [Fact]
    public void Root_path_and_terminal_come_from_the_request_and_host_parts_go()
    {
        var spec = JsonNode.Parse(OciSpecRewriter.RewriteConfig(System.Text.Encoding.UTF8.GetBytes(Spec), "/run/sandbox/shared/c1/rootfs", false).Json)!;
        Assert.Equal("/run/sandbox/shared/c1/rootfs", (string?)spec["root"]!["path"]);
        Assert.True((bool)spec["root"]!["readonly"]!);
        Assert.False((bool)spec["process"]!["terminal"]!);
        Assert.Null(spec["hooks"]);
        var namespaces = spec["linux"]!["namespaces"]!.AsArray();
        Assert.Equal(new[] { "pid", "mount" }, namespaces.Select(n => (string)n!["type"]!).ToArray());
        Assert.All(namespaces, n => Assert.Null(n!["path"]));
    }

    [Theory]
    [InlineData("", "oci_spec_json is empty")]
    [InlineData("[1]", "oci_spec_json must be a JSON object")]
    [InlineData("{\"process\":1}", "oci_spec_json.process")]
    [InlineData("{\"process\":{}}", "oci_spec_json.process.args")]
    [InlineData("{\"process\":{\"args\":[\"a\",2]}}", "oci_spec_json.process.args[1]")]
    [InlineData("{\"process\":{\"args\":[\"a\"],\"env\":\"x\"}}", "oci_spec_json.process.env")]
    [InlineData("{\"process\":{\"args\":[\"a\"]},\"root\":5}", "oci_spec_json.root")]
    [InlineData("{\"process\":{\"args\":[\"a\"]},\"linux\":{\"namespaces\":[{}]}}", "oci_spec_json.linux.namespaces[0].type")]
    [InlineData("{\"ociVersion\":\"2.0.0\",\"process\":{\"args\":[\"a\"]}}", "oci_spec_json.ociVersion is '2.0.0', a runtime-spec version the guest cannot run")]
    [InlineData("{\"ociVersion\":7,\"process\":{\"args\":[\"a\"]}}", "oci_spec_json.ociVersion is '7'")]
    public void Malformed_specs_name_the_field(string json, string field)
    {
        var e = Assert.Throws<InvalidSpecException>(() => OciSpecRewriter.RewriteConfig(System.Text.Encoding.UTF8.GetBytes(json), "/r", false));
        Assert.Contains(field, e.Message);
    }

    [Theory]
    [InlineData("1.0.2")]   // containerd 1.6
    [InlineData("1.1.0")]   // containerd 1.7
    [InlineData("1.2.1")]   // containerd 2.1
    [InlineData("1.3.0")]
    public void Every_runtime_spec_1_x_that_containerd_writes_is_accepted(string version)
    {
        var json = $"{{\"ociVersion\":\"{version}\",\"process\":{{\"args\":[\"a\"]}}}}";
        var config = JsonNode.Parse(OciSpecRewriter.RewriteConfig(System.Text.Encoding.UTF8.GetBytes(json), "/r", false).Json)!;
        Assert.Equal(version, (string?)config["ociVersion"]); // passed on as it is, never rewritten
    }

    [Fact]
    public void Exec_process_gets_terminal_and_a_default_cwd()
    {
        var process = JsonNode.Parse(OciSpecRewriter.RewriteProcess("{\"args\":[\"ls\"]}"u8, true))!;
        Assert.True((bool)process["terminal"]!);
        Assert.Equal("/", (string?)process["cwd"]);
        Assert.Contains("process_json.args", Assert.Throws<InvalidSpecException>(() => OciSpecRewriter.RewriteProcess("{\"args\":\"ls\"}"u8, false)).Message);
    }
}

public class CrunCommandLineTests
{
    private readonly CrunCommandLine _crun = new("/usr/bin/crun", "/run/crun", ["--cgroup-manager=disabled"]);

    [Fact]
    public void Create_passes_bundle_pid_file_and_console_socket()
    {
        Assert.Equal(["/usr/bin/crun", "--root", "/run/crun", "--log", "/l", "--cgroup-manager=disabled", "create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "c1"],
            _crun.Create("/l", "c1", "/b", "/p", "/s"));
        Assert.DoesNotContain("--console-socket", _crun.Create("/l", "c1", "/b", "/p", null));
    }

    [Fact]
    public void Exec_is_detached_and_tty_only_with_a_console_socket()
    {
        var args = _crun.Exec("/l", "c1", "/proc.json", "/p", null);
        Assert.Equal(["exec", "--detach", "--process", "/proc.json", "--pid-file", "/p", "c1"], args.Skip(6));
        Assert.Equal(["--tty", "--console-socket", "/s", "c1"], _crun.Exec("/l", "c1", "/proc.json", "/p", "/s").TakeLast(4));
    }

    [Fact]
    public void Kill_delete_and_ps()
    {
        Assert.Equal(["kill", "--all", "c1", "9"], _crun.Kill("/l", "c1", 9, all: true).Skip(6));
        Assert.Equal(["kill", "c1", "15"], _crun.Kill("/l", "c1", 15, all: false).Skip(6));
        Assert.Equal(["delete", "--force", "c1"], _crun.Delete("/l", "c1", force: true).Skip(6));
        Assert.Equal(["ps", "--format", "json", "c1"], _crun.ListPids("/l", "c1").Skip(6));
    }

    [Fact]
    public void Pid_lists_and_logs_are_parsed()
    {
        Assert.Equal([12u, 34u], ContainerRunner.ParsePidList("[12,34]", "c1"));
        Assert.Equal(StatusCode.Internal, Assert.Throws<RpcException>(() => ContainerRunner.ParsePidList("oops", "c1")).StatusCode);
        Assert.Equal("bad thing; other", CrunLogText.Clean("{\"msg\":\"bad thing\",\"level\":\"error\"}\nother\nbad thing\n"));
    }

    [Theory]
    [InlineData("c1", true)]
    [InlineData("abc-DEF_1.2", true)]
    [InlineData("", false)]
    [InlineData("../etc", false)]
    [InlineData(".hidden", false)]
    [InlineData("a/b", false)]
    public void Container_ids_are_checked(string id, bool valid)
    {
        if (valid) ContainerRunner.ValidateId(id, "container_id");
        else Assert.Equal(StatusCode.InvalidArgument, Assert.Throws<RpcException>(() => ContainerRunner.ValidateId(id, "container_id")).StatusCode);
    }
}

public class ListenAddressTests
{
    [Fact]
    public void Vsock_and_unix_addresses_parse()
    {
        Assert.True(ListenAddress.TryParse("vsock:2048", out var vsock, out _));
        Assert.Equal(new VsockEndPoint(VsockEndPoint.AnyCid, 2048), vsock.EndPoint);
        Assert.True(ListenAddress.TryParse("unix:/tmp/a.sock", out var unix, out _));
        Assert.IsType<UnixDomainSocketEndPoint>(unix.EndPoint);
        Assert.Equal(new VsockEndPoint(VsockEndPoint.AnyCid, 1024), ListenAddress.Default.EndPoint);
    }

    [Theory]
    [InlineData("vsock:")]
    [InlineData("vsock:x")]
    [InlineData("unix:")]
    [InlineData("tcp:1234")]
    public void Bad_addresses_say_what_is_expected(string text)
    {
        Assert.False(ListenAddress.TryParse(text, out _, out string error));
        Assert.Contains("expected", error);
    }
}

public class ContainerCgroupTests
{
    [Fact]
    public void Stats_are_read_from_the_cgroup_v2_files_and_max_and_missing_files_read_as_zero()
    {
        string dir = Directory.CreateTempSubdirectory("cgroup").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
            File.WriteAllText(Path.Combine(dir, "memory.current"), "4194304\n");
            File.WriteAllText(Path.Combine(dir, "memory.max"), "max\n");
            File.WriteAllText(Path.Combine(dir, "memory.stat"), "anon 1048576\nfile 2097152\ninactive_file 65536\n");
            File.WriteAllText(Path.Combine(dir, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
            File.WriteAllText(Path.Combine(dir, "pids.current"), "2\n");
            File.WriteAllText(Path.Combine(dir, "pids.max"), "max\n");

            var stats = new Sandbox.Agent.Containers.ContainerCgroup(dir).ReadStats();

            Assert.Equal(dir, stats.Cgroup);
            Assert.Equal(1500UL, stats.CpuUsageUsec);
            Assert.Equal(1000UL, stats.CpuUserUsec);
            Assert.Equal(500UL, stats.CpuSystemUsec);
            Assert.Equal(4194304UL, stats.MemoryCurrent);
            Assert.Equal(0UL, stats.MemoryMax);          // "max": no limit
            Assert.Equal(0UL, stats.MemorySwapCurrent);  // no memory.swap.current
            Assert.Equal(65536UL, stats.MemoryStat["inactive_file"]);
            Assert.Equal(2UL, stats.PidsCurrent);
            Assert.Equal(1UL, stats.OomKills);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_cgroup_of_a_process_is_its_unified_hierarchy_line()
    {
        string proc = Directory.CreateTempSubdirectory("proc").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(proc, "42"));
            File.WriteAllText(Path.Combine(proc, "42", "cgroup"), "0::/kubepods/pod1/c1\n");
            Assert.Equal("/sys/fs/cgroup/kubepods/pod1/c1", Sandbox.Agent.Containers.ContainerCgroup.Of(42, proc)!.Directory);
            Assert.Null(Sandbox.Agent.Containers.ContainerCgroup.Of(43, proc));
        }
        finally
        {
            Directory.Delete(proc, recursive: true);
        }
    }
}

public class AgentPeerPolicyTests
{
    [Theory]
    [InlineData(2u, true)]            // the host (kernel vsock, or vhost-device-vsock on the host's behalf)
    [InlineData(3u, false)]           // the guest itself: a container dialing the guest's own CID
    [InlineData(1u, false)]           // VMADDR_CID_LOCAL
    [InlineData(0xFFFFFFFFu, false)]
    public void Only_the_host_may_talk_to_the_agent(uint cid, bool accepted)
    {
        Assert.Equal(accepted, Sandbox.Agent.Server.AgentPeerPolicy.Accepts(new VsockEndPoint(cid, 51000)));
    }

    [Fact]
    public void A_refusal_names_the_peer()
    {
        Assert.Equal("refused a vsock connection from CID 3 port 51000: the agent serves only the host (CID 2)",
            Sandbox.Agent.Server.AgentPeerPolicy.DescribeRefusal(new VsockEndPoint(3, 51000)));
    }
}
