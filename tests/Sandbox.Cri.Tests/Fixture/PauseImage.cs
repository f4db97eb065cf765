namespace Sandbox.Cri.Tests.Fixture;

/// <summary>
/// The pod sandbox ("pause") image for CRI's sandbox_image, so that nothing is pulled: the busybox OCI layout of
/// BusyboxOciImage with a new config whose entrypoint sleeps until SIGTERM/SIGINT (<see cref="DerivedOciImage"/>).
/// </summary>
public static class PauseImage
{
    public const string DefaultName = "docker.io/library/sandbox-pause:test";

    /// <summary>Exits 0 on TERM/INT; otherwise sleeps (one sleep process, no polling loop).</summary>
    public static readonly string[] Entrypoint = { "/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait" };

    public static void DeriveFrom(string busyboxLayoutTar, string pauseLayoutTar, string imageName = DefaultName) =>
        DerivedOciImage.Write(busyboxLayoutTar, pauseLayoutTar, imageName, process =>
        {
            process["Entrypoint"] = DerivedOciImage.StringArray(Entrypoint);
            process.Remove("Cmd");
        });
}
