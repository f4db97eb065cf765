using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Sandbox.Cri.Tests.Fixture;

/// <summary>
/// Writes a new OCI image layout tar from an existing one (BusyboxOciImage's): the same layers, a config changed by
/// the caller (entrypoint, command, ports...), a new manifest, and an index whose io.containerd.image.name annotation
/// names the new image, so that `ctr images import` and `skopeo copy oci-archive:` both take it.
/// </summary>
public static class DerivedOciImage
{
    /// <param name="editConfig">Changes the image config's "config" object (Entrypoint, Cmd, Env, ExposedPorts...).</param>
    public static void Write(string sourceLayoutTar, string targetLayoutTar, string imageName, Action<JsonObject> editConfig)
    {
        var blobs = ReadEntries(sourceLayoutTar);
        var index = JsonNode.Parse(blobs["index.json"])!.AsObject();
        var sourceManifestDigest = (string)index["manifests"]![0]!["digest"]!;
        var manifest = JsonNode.Parse(blobs[BlobPath(sourceManifestDigest)])!.AsObject();
        var config = JsonNode.Parse(blobs[BlobPath((string)manifest["config"]!["digest"]!)])!.AsObject();

        editConfig(config["config"]!.AsObject());
        byte[] configBytes = Encoding.UTF8.GetBytes(config.ToJsonString());
        string configDigest = Digest(configBytes);

        manifest["config"]!["digest"] = configDigest;
        manifest["config"]!["size"] = configBytes.Length;
        byte[] manifestBytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        string manifestDigest = Digest(manifestBytes);

        var descriptor = index["manifests"]![0]!.AsObject();
        descriptor["digest"] = manifestDigest;
        descriptor["size"] = manifestBytes.Length;
        descriptor["annotations"] = new JsonObject
        {
            ["io.containerd.image.name"] = imageName,
            ["org.opencontainers.image.ref.name"] = imageName[(imageName.LastIndexOf(':') + 1)..],
        };

        using var output = File.Create(targetLayoutTar);
        using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: false);
        Add(tar, "oci-layout", blobs["oci-layout"]);
        Add(tar, "index.json", Encoding.UTF8.GetBytes(index.ToJsonString()));
        Add(tar, BlobPath(configDigest), configBytes);
        Add(tar, BlobPath(manifestDigest), manifestBytes);
        foreach (var layer in manifest["layers"]!.AsArray())
        {
            string path = BlobPath((string)layer!["digest"]!);
            Add(tar, path, blobs[path]);
        }
    }

    /// <summary>A JSON array of strings, for Entrypoint and Cmd.</summary>
    public static JsonArray StringArray(IEnumerable<string> items) =>
        new(items.Select(item => (JsonNode)JsonValue.Create(item)!).ToArray());

    private static Dictionary<string, byte[]> ReadEntries(string tarPath)
    {
        var entries = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        using var input = File.OpenRead(tarPath);
        using var tar = new TarReader(input);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.DataStream is null)
                continue;
            using var content = new MemoryStream();
            entry.DataStream.CopyTo(content);
            entries[entry.Name] = content.ToArray();
        }
        return entries;
    }

    private static string BlobPath(string digest) => "blobs/sha256/" + digest["sha256:".Length..];

    private static string Digest(byte[] data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    private static void Add(TarWriter tar, string name, byte[] content) =>
        tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            Mode = (UnixFileMode)0b110_100_100,
            ModificationTime = DateTimeOffset.UnixEpoch,
            DataStream = new MemoryStream(content),
        });
}
