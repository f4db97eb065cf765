using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Sandbox.Shim.Tests.Containerd;

/// <summary>
/// Builds a tiny OCI image layout tar from the host's busybox-static, for `ctr images import`: oci-layout,
/// index.json (with the io.containerd.image.name annotation), a manifest, a config and one gzip layer holding
/// /bin/busybox and applet symlinks. No registry needed.
/// </summary>
public static class BusyboxOciImage
{
    public const string DefaultName = "docker.io/library/sandbox-busybox:test";

    private static readonly string[] Applets =
    {
        "sh", "echo", "cat", "sleep", "ls", "true", "false", "env", "ps", "kill", "id", "hostname", "wc", "head", "tr", "seq", "yes", "printf", "test", "uname", "date", "pwd", "mkdir", "touch", "grep", "tail", "sha256sum", "dd",
    };

    /// <summary>Writes the image tar to <paramref name="tarPath"/>. Needs /bin/busybox to be a static binary.</summary>
    /// <param name="applets">The applet links in /bin; default: the few the tests use. <see cref="AllApplets"/> for an image
    /// like the Kubernetes e2e busybox, which critest's specs expect to have every applet (pgrep, top, nc...).</param>
    public static void Build(string tarPath, string imageName = DefaultName, string busyboxPath = "/bin/busybox", IReadOnlyList<string>? applets = null)
    {
        if (!File.Exists(busyboxPath))
            throw new FileNotFoundException($"busybox not found at {busyboxPath}: install busybox-static");

        var (layerTar, layerGzip) = BuildLayer(busyboxPath, applets ?? Applets);
        string diffId = "sha256:" + Sha256(layerTar);
        string layerDigest = "sha256:" + Sha256(layerGzip);

        var config = new JsonObject
        {
            ["architecture"] = "amd64",
            ["os"] = "linux",
            ["config"] = new JsonObject
            {
                ["Env"] = new JsonArray("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                ["Cmd"] = new JsonArray("sh"),
                ["WorkingDir"] = "/",
            },
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray(diffId) },
        };
        byte[] configBytes = Encoding.UTF8.GetBytes(config.ToJsonString());
        string configDigest = "sha256:" + Sha256(configBytes);

        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = "application/vnd.oci.image.manifest.v1+json",
            ["config"] = Descriptor("application/vnd.oci.image.config.v1+json", configDigest, configBytes.Length),
            ["layers"] = new JsonArray(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layerDigest, layerGzip.Length)),
        };
        byte[] manifestBytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        string manifestDigest = "sha256:" + Sha256(manifestBytes);

        var manifestDescriptor = Descriptor("application/vnd.oci.image.manifest.v1+json", manifestDigest, manifestBytes.Length);
        manifestDescriptor["annotations"] = new JsonObject
        {
            ["io.containerd.image.name"] = imageName,
            ["org.opencontainers.image.ref.name"] = imageName[(imageName.LastIndexOf(':') + 1)..],
        };
        var index = new JsonObject { ["schemaVersion"] = 2, ["manifests"] = new JsonArray(manifestDescriptor) };

        using var output = File.Create(tarPath);
        using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: false);
        AddFile(tar, "oci-layout", Encoding.UTF8.GetBytes("{\"imageLayoutVersion\":\"1.0.0\"}"));
        AddFile(tar, "index.json", Encoding.UTF8.GetBytes(index.ToJsonString()));
        AddFile(tar, "blobs/sha256/" + configDigest[7..], configBytes);
        AddFile(tar, "blobs/sha256/" + manifestDigest[7..], manifestBytes);
        AddFile(tar, "blobs/sha256/" + layerDigest[7..], layerGzip);
    }

    /// <summary>Every applet the host's busybox has (`busybox --list`), without busybox itself.</summary>
    public static IReadOnlyList<string> AllApplets(string busyboxPath = "/bin/busybox")
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(busyboxPath, "--list") { RedirectStandardOutput = true })
            ?? throw new InvalidOperationException($"{busyboxPath} --list did not start");
        string list = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{busyboxPath} --list exited with {process.ExitCode}");
        return list.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(a => a != "busybox").ToArray();
    }

    private static (byte[] Tar, byte[] Gzip) BuildLayer(string busyboxPath, IReadOnlyList<string> applets)
    {
        var tarStream = new MemoryStream();
        using (var tar = new TarWriter(tarStream, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var dir in new[] { "bin", "dev", "etc", "proc", "sys", "tmp", "root", "usr", "usr/bin" })
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, dir + "/")
                {
                    Mode = dir == "tmp" ? (UnixFileMode)0b111_111_111 | UnixFileMode.StickyBit : (UnixFileMode)0b111_101_101,
                    ModificationTime = DateTimeOffset.UnixEpoch,
                });
            }
            var busybox = new PaxTarEntry(TarEntryType.RegularFile, "bin/busybox")
            {
                Mode = (UnixFileMode)0b111_101_101,
                ModificationTime = DateTimeOffset.UnixEpoch,
                DataStream = new MemoryStream(File.ReadAllBytes(busyboxPath)),
            };
            tar.WriteEntry(busybox);
            foreach (var applet in applets)
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "bin/" + applet)
                {
                    LinkName = "busybox",
                    Mode = (UnixFileMode)0b111_111_111,
                    ModificationTime = DateTimeOffset.UnixEpoch,
                });
            }
            AddFile(tar, "etc/passwd", Encoding.UTF8.GetBytes("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"));
            AddFile(tar, "etc/group", Encoding.UTF8.GetBytes("root:x:0:\nnogroup:x:65534:\n"));
        }
        byte[] tarBytes = tarStream.ToArray();
        var gzipStream = new MemoryStream();
        using (var gzip = new GZipStream(gzipStream, CompressionLevel.Fastest, leaveOpen: true))
            gzip.Write(tarBytes);
        return (tarBytes, gzipStream.ToArray());
    }

    private static void AddFile(TarWriter tar, string name, byte[] content) =>
        tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            Mode = (UnixFileMode)0b110_100_100,
            ModificationTime = DateTimeOffset.UnixEpoch,
            DataStream = new MemoryStream(content),
        });

    private static JsonObject Descriptor(string mediaType, string digest, long size) =>
        new() { ["mediaType"] = mediaType, ["digest"] = digest, ["size"] = size };

    private static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
