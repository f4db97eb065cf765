using System.Text.Json.Nodes;
using Sandbox.Fuzzing;
using Sandbox.Runtime.Network;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Start;
using Sandbox.Shim.Vm;

namespace Sandbox.Shim.Tests.Fuzzing;

/// <summary>
/// Fuzzes every reader of a bundle's config.json in the shim (the sandbox id, host namespaces, VM size, resource
/// budget, host cgroup path, network namespace, how each mount is shared) with mutations of a CRI container's spec:
/// fields removed, values of the wrong type, huge numbers, hostile strings, deep nesting, unknown mount types and
/// paths outside the bundle. Each reader must give an answer or its documented error (FormatException or
/// SandboxBackendException, with a message); any other exception is a crash of the create path.
/// </summary>
public sealed class BundleConfigFuzzTests
{
    private const string Spec = """
        {
          "ociVersion": "1.1.0",
          "process": { "user": { "uid": 0, "gid": 0 }, "args": ["sleep", "1000"], "env": ["PATH=/bin"], "cwd": "/" },
          "root": { "path": "rootfs" },
          "hostname": "pod-a",
          "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/dev/shm", "type": "bind", "source": "/run/containerd/sandboxes/abc/shm", "options": ["rbind", "ro"] },
            { "destination": "/etc/hosts", "type": "bind", "source": "/var/lib/containerd/sandboxes/abc/hosts", "options": ["rbind", "rprivate", "rw"] }
          ],
          "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": "abc",
            "io.kubernetes.cri.sandbox-cpu-quota": "200000",
            "io.kubernetes.cri.sandbox-cpu-period": "100000",
            "io.kubernetes.cri.sandbox-memory": "268435456"
          },
          "linux": {
            "resources": { "memory": { "limit": 134217728 }, "cpu": { "shares": 512, "quota": 50000, "period": 100000 } },
            "cgroupsPath": "kubepods-besteffort-podabc.slice:cri-containerd:c1",
            "namespaces": [ { "type": "pid" }, { "type": "ipc", "path": "/proc/42/ns/ipc" }, { "type": "network", "path": "/var/run/netns/cni-1" }, { "type": "mount" } ]
          }
        }
        """;

    private static readonly JsonNode[] ExtraEntries =
    [
        JsonNode.Parse("""{ "destination": "/x", "type": "9p-unknown", "source": "whatever" }""")!,
        JsonNode.Parse("""{ "destination": "../../../etc", "type": "bind", "source": "../../outside", "options": ["rbind"] }""")!,
        JsonNode.Parse("""{ "destination": "/data", "type": "bind", "source": "/nonexistent/volume", "options": ["bind", "ro"] }""")!,
        JsonNode.Parse("""{ "type": "time" }""")!,
        JsonNode.Parse("""{ "type": "network", "path": "/proc/self/ns/net" }""")!,
        JsonNode.Parse("""{ "type": "network" }""")!,
        JsonNode.Parse("\"a string where an object belongs\"")!,
    ];

    [Fact]
    public async Task Every_config_reader_answers_or_names_what_is_wrong()
    {
        var original = JsonNode.Parse(Spec)!;
        var run = new FuzzRun("config.json readers", iterations: 3000, budget: TimeSpan.FromSeconds(45));
        int rejected = 0;
        await run.RunAsync(fuzzCase =>
        {
            string json = fuzzCase.Random.Next(10) == 0
                ? System.Text.Encoding.UTF8.GetString(ByteMutator.Mutate(fuzzCase.Random, System.Text.Encoding.UTF8.GetBytes(Spec)))
                : JsonMutator.Mutate(fuzzCase.Random, original, ExtraEntries).ToJsonString();
            fuzzCase.Input = json;
            var readers = new (string Name, Action Read)[]
            {
                ("BundleConfig.GroupIdOf", () => BundleConfig.GroupIdOf(json, "c1")),
                ("HostNamespaceRefusal.RequestedBy", () => HostNamespaceRefusal.RequestedBy(json)),
                ("PodVmSize.ForSpec", () => PodVmSize.ForSpec(json, 1, 512)),
                ("ContainerLimits.OfSpec", () => ContainerLimits.OfSpec(json)),
                ("PodHostCgroupPlan.CgroupsPathOf", () => PodHostCgroupPlan.CgroupsPathOf(json)),
                ("OciNetworkNamespace.PathOf", () => OciNetworkNamespace.PathOf(json)),
                ("ContainerMountShare.Classify", () => ClassifyMounts(json)),
            };
            foreach (var (name, read) in readers)
            {
                try
                {
                    read();
                }
                catch (Exception e) when (e is FormatException or SandboxBackendException
                                              || (e is System.Text.Json.JsonException && name == "BundleConfig.GroupIdOf" /* its callers say "not valid JSON" */))
                {
                    Assert.False(string.IsNullOrWhiteSpace(e.Message), $"{name} refused the spec without a message");
                    rejected++;
                }
                catch (Exception e)
                {
                    throw new InvalidOperationException($"{name} failed with {e.GetType().Name} instead of a clear error: {e.Message}", e);
                }
            }
            return Task.CompletedTask;
        });
        Assert.True(rejected > 0, "no mutation was ever refused: the fuzzer is not reaching the readers' checks");
        Assert.True(run.Completed >= 200, $"only {run.Completed} specs were tried within the time budget");
    }

    [Fact]
    public void Found_by_the_fuzzer_a_duplicate_property_is_a_clear_error_not_an_ArgumentException()
    {
        var e = Assert.Throws<SandboxBackendException>(() =>
            ContainerMountShare.Share("""{"mounts": [{"source": "/a", "source": "/b", "type": "bind"}]}""", "/nonexistent", p => p, "container c1"));
        Assert.Contains("container c1: config.json is not valid JSON", e.Message);
    }

    [Fact]
    public void Found_by_the_fuzzer_a_sandbox_id_annotation_that_could_name_a_path_is_refused()
    {
        var e = Assert.Throws<FormatException>(() =>
            BundleConfig.GroupIdOf("""{"annotations": {"io.kubernetes.cri.sandbox-id": "../../etc"}}""", "c1"));
        Assert.Contains("\"../../etc\" is not a valid sandbox id", e.Message);
        Assert.Equal("0123abcd", BundleConfig.GroupIdOf("""{"annotations": {"io.kubernetes.cri.sandbox-id": "0123abcd"}}""", "c1"));
    }

    private static void ClassifyMounts(string json)
    {
        var spec = ContainerMountShare.ParseSpec(json, "container c1");
        if (spec["mounts"] is JsonArray mounts)
        {
            foreach (var mount in mounts.OfType<JsonObject>())
                ContainerMountShare.Classify(mount);
        }
    }
}
