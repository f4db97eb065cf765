using System.Text.Json.Nodes;
using Sandbox.Shim.Start;

namespace Sandbox.Shim.Vm;

/// <summary>
/// The guest process that holds a pod's shared namespaces when containerd's Sandbox API starts the pod (no pause
/// container comes through the task API then): a container of the agent's, marked as the pod's sandbox
/// (io.kubernetes.cri.container-type=sandbox), whose init sleeps in new pid, ipc, uts and mount namespaces with the
/// pod's hostname. The pod's containers join its namespaces, as they join a pause container's. Its root is a
/// read-only directory of the guest image with only busybox (images/build-image.sh), it has no capabilities, no new
/// privileges and no stdio.
/// </summary>
internal static class GuestPodNamespaces
{
    /// <summary>The guest directory its root is (made by images/build-image.sh).</summary>
    public const string RootfsPath = Sandbox.Runtime.Sandboxes.GuestBusyboxRoot.Path;

    public static string SpecJson(string sandboxId, string hostname)
    {
        var spec = new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = new JsonObject
            {
                ["args"] = new JsonArray("/bin/busybox", "sleep", "2147483647"),
                ["cwd"] = "/",
                ["env"] = new JsonArray("PATH=/bin"),
                ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
                ["noNewPrivileges"] = true,
                ["capabilities"] = new JsonObject(),
            },
            ["root"] = new JsonObject { ["path"] = RootfsPath, ["readonly"] = true },
            ["hostname"] = hostname.Length > 0 ? hostname : sandboxId[..Math.Min(sandboxId.Length, 63)],
            ["mounts"] = new JsonArray(
                new JsonObject { ["destination"] = "/proc", ["type"] = "proc", ["source"] = "proc", ["options"] = new JsonArray("nosuid", "noexec", "nodev") },
                new JsonObject { ["destination"] = "/dev", ["type"] = "tmpfs", ["source"] = "tmpfs", ["options"] = new JsonArray("nosuid", "strictatime", "mode=755", "size=65536k") }),
            ["annotations"] = new JsonObject
            {
                [BundleConfig.ContainerTypeAnnotation] = "sandbox",
                [BundleConfig.SandboxIdAnnotation] = sandboxId,
            },
            ["linux"] = new JsonObject
            {
                ["namespaces"] = new JsonArray(
                    new JsonObject { ["type"] = "pid" },
                    new JsonObject { ["type"] = "ipc" },
                    new JsonObject { ["type"] = "uts" },
                    new JsonObject { ["type"] = "mount" }),
                ["maskedPaths"] = new JsonArray("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"),
                ["readonlyPaths"] = new JsonArray("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"),
            },
        };
        return spec.ToJsonString();
    }
}
