using System.Diagnostics;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using AgentClient = Sandbox.Agent.Protocol.Agent.AgentClient;

namespace Sandbox.Runtime.Templates;

/// <summary>
/// Runs one throw-away container in a template's source VM before it is saved, so that every clone starts with the
/// one-time work of a first container already done: the agent's read-only copy of crun, its first crun command, the
/// first calls of CreateContainer, StartContainer, WaitProcess and RemoveContainer, and the guest kernel's first
/// namespaces, mounts and cgroup of a container. The container runs `true` on the guest image's read-only busybox
/// directory (the one the Sandbox API's pod namespaces use), with the namespaces and mounts ctr gives a container, and
/// is removed before the save: the template holds no container.
/// Measured under TCG (`ctr run --rm`, 10 runs each way, interleaved): a clone's CreateContainer 510 -> 420 ms, the whole
/// run 1.47 -> 1.37 s (medians). A throw-away CreateSandbox and DestroySandbox besides (the first 9p mount) was tried
/// and dropped: the clone's CreateSandbox took the same ~50 ms in the guest.
/// </summary>
public static class TemplateWarmUp
{
    public const string ContainerId = "template-warm-up";

    /// <summary>The guest directory its root is: busybox only, read-only.</summary>
    public const string RootfsPath = Sandboxes.GuestBusyboxRoot.Path;

    /// <summary>Creates, starts, waits for and removes the container in template <paramref name="templateId"/>'s
    /// source VM; returns how long that took. Throws <see cref="InvalidOperationException"/>, naming the step, when a
    /// call fails or the container does not exit 0: the template is then not made, and sandboxes boot cold.</summary>
    public static async Task<TimeSpan> RunAsync(AgentClient agent, TimeSpan timeout, string templateId, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        DateTime deadline = DateTime.UtcNow + timeout;
        string step = "CreateContainer";
        try
        {
            await agent.CreateContainerAsync(new CreateContainerRequest
            {
                ContainerId = ContainerId,
                OciSpecJson = ByteString.CopyFromUtf8(SpecJson()),
                RootfsPath = RootfsPath,
            }, deadline: deadline, cancellationToken: cancellationToken);
            step = "StartContainer";
            await agent.StartContainerAsync(new StartContainerRequest { ContainerId = ContainerId }, deadline: deadline, cancellationToken: cancellationToken);
            step = "WaitProcess";
            var exit = await agent.WaitProcessAsync(new WaitProcessRequest { ContainerId = ContainerId }, deadline: deadline, cancellationToken: cancellationToken);
            step = "RemoveContainer";
            await agent.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = ContainerId, Force = true }, deadline: deadline, cancellationToken: cancellationToken);
            if (exit.ExitStatus != 0)
                throw new InvalidOperationException($"template {templateId}: its warm-up container ({RootfsPath}/bin/busybox true) exited {exit.ExitStatus}, not 0; " +
                                                    "see the source VM's console log for the agent's crun errors");
        }
        catch (RpcException e)
        {
            throw new InvalidOperationException($"template {templateId}: the agent's {step} of the warm-up container failed ({e.StatusCode}: {e.Status.Detail}); " +
                                                "see the source VM's console log", e);
        }
        return clock.Elapsed;
    }

    /// <summary>An OCI spec shaped like the one ctr and the CRI plugin write (namespaces, the usual mounts, a
    /// device allow-list), so the guest runs the same code a real container's creation runs.</summary>
    public static string SpecJson()
    {
        static JsonObject Mount(string destination, string type, string source, params string[] options) => new()
        {
            ["destination"] = destination,
            ["type"] = type,
            ["source"] = source,
            ["options"] = new JsonArray(options.Select(o => (JsonNode)o).ToArray()),
        };
        var spec = new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = new JsonObject
            {
                ["args"] = new JsonArray("/bin/busybox", "true"),
                ["cwd"] = "/",
                ["env"] = new JsonArray("PATH=/bin"),
                ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
                ["noNewPrivileges"] = true,
                ["capabilities"] = new JsonObject
                {
                    ["bounding"] = new JsonArray("CAP_CHOWN", "CAP_KILL"),
                    ["effective"] = new JsonArray("CAP_CHOWN", "CAP_KILL"),
                    ["permitted"] = new JsonArray("CAP_CHOWN", "CAP_KILL"),
                },
                ["rlimits"] = new JsonArray(new JsonObject { ["type"] = "RLIMIT_NOFILE", ["hard"] = 1024, ["soft"] = 1024 }),
            },
            ["root"] = new JsonObject { ["path"] = RootfsPath, ["readonly"] = true },
            ["hostname"] = ContainerId,
            ["mounts"] = new JsonArray(
                Mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
                Mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
                Mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
                Mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
                Mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
                Mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
                Mount("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k")),
            ["linux"] = new JsonObject
            {
                ["namespaces"] = new JsonArray(
                    new JsonObject { ["type"] = "pid" },
                    new JsonObject { ["type"] = "ipc" },
                    new JsonObject { ["type"] = "uts" },
                    new JsonObject { ["type"] = "mount" }),
                ["resources"] = new JsonObject
                {
                    ["devices"] = new JsonArray(
                        new JsonObject { ["allow"] = false, ["access"] = "rwm" },
                        new JsonObject { ["allow"] = true, ["type"] = "c", ["major"] = 1, ["minor"] = 3, ["access"] = "rwm" }),
                },
                ["maskedPaths"] = new JsonArray("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"),
                ["readonlyPaths"] = new JsonArray("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"),
            },
        };
        return spec.ToJsonString();
    }
}
