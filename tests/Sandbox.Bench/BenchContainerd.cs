using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Bench;

/// <summary>The private containerd the ctr benches run on: our shim registered, the busybox image imported.</summary>
public static class BenchContainerd
{
    public static async Task<PrivateContainerd> StartAsync()
    {
        var options = new PrivateContainerdOptions();
        options.Shims["containerd-shim-sandbox-v2"] = ShimBinary.Locate();
        var containerd = await PrivateContainerd.StartAsync(options);
        try
        {
            var image = Path.Combine(containerd.Directory, "busybox.tar");
            BusyboxOciImage.Build(image);
            await containerd.ImportImageAsync(image);
            return containerd;
        }
        catch
        {
            await containerd.DisposeAsync();
            throw;
        }
    }
}
