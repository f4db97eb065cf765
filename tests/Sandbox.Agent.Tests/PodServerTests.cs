using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Tests;

/// <summary>CRI pods through the agent's RPCs (fake crun): application containers join their sandbox container's namespaces.</summary>
public sealed class PodServerTests : IAsyncLifetime
{
    private readonly AgentProcess _agent = new();
    private Protocol.Agent.AgentClient Client => _agent.Client;

    public Task InitializeAsync() => _agent.InitializeAsync();
    public Task DisposeAsync() => _agent.DisposeAsync();

    private static CallOptions Deadline => new(deadline: DateTime.UtcNow.AddSeconds(30));

    public static string PodSpec(string containerType, string sandboxId, string[] args, string namespaces) =>
        new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = new JsonObject { ["args"] = new JsonArray(args.Select(a => (JsonNode)a!).ToArray()), ["cwd"] = "/" },
            ["root"] = new JsonObject { ["path"] = "rootfs" },
            ["annotations"] = new JsonObject
            {
                ["io.kubernetes.cri.container-type"] = containerType,
                ["io.kubernetes.cri.sandbox-id"] = sandboxId,
            },
            ["linux"] = new JsonObject { ["namespaces"] = JsonNode.Parse(namespaces) },
        }.ToJsonString();

    private const string HostPathNamespaces = """
        [{"type":"pid","path":"/proc/999/ns/pid"},{"type":"ipc","path":"/proc/999/ns/ipc"},{"type":"uts","path":"/proc/999/ns/uts"},
         {"type":"mount"},{"type":"network","path":"/proc/999/ns/net"}]
        """;

    private async Task<uint> CreateAsync(string id, string spec) =>
        (await Client.CreateContainerAsync(new CreateContainerRequest { ContainerId = id, OciSpecJson = ByteString.CopyFromUtf8(spec), RootfsPath = "/" }, Deadline)).Pid;

    private Task RemoveAsync(string id) => Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = id, Force = true }, Deadline).ResponseAsync;

    [Fact]
    public async Task An_app_container_config_names_the_guest_namespaces_of_its_sandbox_init()
    {
        uint sandboxPid = await CreateAsync("pod1", PodSpec("sandbox", "pod1", ["sleep", "100"], """[{"type":"pid"},{"type":"ipc"},{"type":"uts"}]"""));
        await CreateAsync("app1", PodSpec("container", "pod1", ["sleep", "100"], HostPathNamespaces));

        var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_agent.RunDirectory, "containers", "app1", "config.json")))!;
        var namespaces = config["linux"]!["namespaces"]!.AsArray().ToDictionary(n => (string)n!["type"]!, n => (string?)n!["path"]);
        Assert.Equal($"/proc/{sandboxPid}/ns/pid", namespaces["pid"]);
        Assert.Equal($"/proc/{sandboxPid}/ns/ipc", namespaces["ipc"]);
        Assert.Equal($"/proc/{sandboxPid}/ns/uts", namespaces["uts"]);
        Assert.Null(namespaces["mount"]);
        Assert.False(namespaces.ContainsKey("network"));

        await RemoveAsync("app1");
        await RemoveAsync("pod1");
    }

    [Fact]
    public async Task An_app_container_without_its_sandbox_in_the_VM_is_FailedPrecondition_and_leaves_nothing()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => CreateAsync("app2", PodSpec("container", "no-such-pod", ["sleep", "100"], HostPathNamespaces)));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("app2", error.Status.Detail);
        Assert.Contains("no-such-pod", error.Status.Detail);
        Assert.False(Directory.Exists(Path.Combine(_agent.RunDirectory, "containers", "app2")));

        // A plain container with the pod's id is not a sandbox either.
        await CreateAsync("plain", """{"process":{"args":["sleep","100"]},"linux":{"namespaces":[{"type":"pid"}]}}""");
        var notSandbox = await Assert.ThrowsAsync<RpcException>(() => CreateAsync("app3", PodSpec("container", "plain", ["sleep", "100"], HostPathNamespaces)));
        Assert.Equal(StatusCode.FailedPrecondition, notSandbox.StatusCode);
        Assert.Contains("not a pod sandbox", notSandbox.Status.Detail);
        await RemoveAsync("plain");
    }

    [Fact]
    public async Task An_app_container_of_a_sandbox_whose_init_exited_is_FailedPrecondition()
    {
        await CreateAsync("pod4", PodSpec("sandbox", "pod4", ["true"], """[{"type":"ipc"}]"""));
        await Client.StartContainerAsync(new StartContainerRequest { ContainerId = "pod4" }, Deadline);
        await Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "pod4" }, Deadline);
        var error = await Assert.ThrowsAsync<RpcException>(() => CreateAsync("app4", PodSpec("container", "pod4", ["sleep", "100"], HostPathNamespaces)));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("has exited", error.Status.Detail);
        await RemoveAsync("pod4");
    }

    [Fact]
    public async Task An_unknown_container_type_is_InvalidArgument()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => CreateAsync("odd", PodSpec("pause", "p", ["sleep", "1"], "[]")));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("io.kubernetes.cri.container-type", error.Status.Detail);
    }
}
