using System.Text;
using System.Text.Json.Nodes;
using Sandbox.Agent.Containers;

namespace Sandbox.Agent.Tests;

/// <summary>What the agent does ahead in the guest: the modules of the VM's virtio devices, and crun's read-only copy.</summary>
public sealed class GuestSetupTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sandbox-guest-setup-" + Guid.NewGuid().ToString("N")[..8]);

    public GuestSetupTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private void AddVirtioDevice(string name, string? id)
    {
        string device = Path.Combine(_directory, "virtio", name);
        Directory.CreateDirectory(device);
        if (id != null) File.WriteAllText(Path.Combine(device, "device"), id + "\n");
    }

    [Fact]
    public void The_9p_share_and_network_cards_need_their_modules_and_other_devices_none()
    {
        AddVirtioDevice("virtio0", "0x0013"); // vsock: loaded by the init
        AddVirtioDevice("virtio1", "0x0009"); // 9p
        AddVirtioDevice("virtio2", "0x0001"); // network card
        AddVirtioDevice("virtio3", "0x0001"); // a second card: no duplicate
        AddVirtioDevice("virtio4", "0x0005"); // balloon: loaded by the init
        AddVirtioDevice("virtio5", null);     // unreadable: skipped
        AddVirtioDevice("virtio6", "garbage");

        Assert.Equal(["virtio_net", "9pnet_virtio", "9p"], KernelModules.ForVirtioDevices(Path.Combine(_directory, "virtio")));
    }

    [Fact]
    public void Without_virtio_devices_nothing_is_loaded()
    {
        AddVirtioDevice("virtio0", "0x0013");
        Assert.Empty(KernelModules.ForVirtioDevices(Path.Combine(_directory, "virtio")));
        Assert.Empty(KernelModules.ForVirtioDevices(Path.Combine(_directory, "missing")));
    }

    [Fact]
    public async Task A_kernel_without_loadable_modules_has_nothing_to_load_and_modprobe_is_not_run()
    {
        // modprobe would fail: a kernel without /proc/modules (ours, built without modules) must not call it
        var modules = new KernelModules("/nonexistent/modprobe", Path.Combine(_directory, "no-proc-modules"));
        await modules.EnsureLoadedAsync(["9p", "overlay", "no_such_module"], "test", CancellationToken.None);
    }

    [Theory]
    [InlineData("""{"process":{"args":["sh"]}}""", "LINUX")]
    [InlineData("""{"process":{"args":["sh"]},"linux":{"namespaces":[]}}""", "LINUX")]
    [InlineData("""{"process":{"args":["sh"]},"linux":{"personality":{"domain":"LINUX32"}}}""", "LINUX32")]
    public void Container_processes_get_a_persona_of_their_own_so_they_do_not_inherit_the_helpers_fixed_layout(string spec, string domain)
    {
        var config = JsonNode.Parse(OciSpecRewriter.RewriteConfig(Encoding.UTF8.GetBytes(spec), "/r", false).Json)!;
        Assert.Equal(domain, (string?)config["linux"]?["personality"]?["domain"]);
    }

    [Fact]
    public void Without_a_read_only_directory_crun_runs_from_where_it_is_installed()
    {
        var binary = new CrunBinary("/usr/bin/crun", readOnlyDirectory: null);
        Assert.Equal("/usr/bin/crun", binary.ExecutablePath);
        Assert.Equal("/usr/bin/crun", binary.InstalledPath);
    }

    [Fact]
    public void Crun_runs_from_a_read_only_ramfs_copy_or_where_it_is_installed_when_the_copy_cannot_be_made()
    {
        string installed = Path.Combine(_directory, "crun");
        File.WriteAllBytes(installed, [0x7f, (byte)'E', (byte)'L', (byte)'F', 1, 2, 3]);
        string copyDirectory = Path.Combine(_directory, "ro");
        var binary = new CrunBinary(installed, copyDirectory);

        string path = binary.ExecutablePath;
        if (Environment.UserName != "root")
        {
            Assert.Equal(installed, path); // mounting needs root: the agent falls back
            return;
        }
        try
        {
            Assert.Equal(Path.Combine(copyDirectory, "crun"), path);
            Assert.Equal(File.ReadAllBytes(installed), File.ReadAllBytes(path));
            Assert.Contains(File.ReadAllLines("/proc/self/mountinfo"), line => line.Contains($" {copyDirectory} ") && line.Contains(" ro,") && line.Contains(" - ramfs "));
            Assert.ThrowsAny<IOException>(() => File.WriteAllText(path, "overwritten"));
            Assert.Same(path, binary.ExecutablePath); // made once
        }
        finally
        {
            using var umount = System.Diagnostics.Process.Start("umount", ["--lazy", copyDirectory]);
            umount.WaitForExit();
        }
    }
}
